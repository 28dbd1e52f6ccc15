/** createRoom on a real homeserver (SQLite): room version 12's room ID, the create event's hash. */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, before, mock, test } from "node:test";
import { tempDir, testMatrixConfig } from "../../../test/e2e/helpers/homeserver.ts";
import { configSchema } from "../../config.ts";
import { silentLogger } from "../../core/logger.ts";
import { type RunningHomeserver, startHomeserver } from "../homeserver.ts";

let dir: string;
let running: RunningHomeserver;
const ALICE = "@alice:localhost";

before(async () => {
  dir = tempDir("ami-room-create-");
  const config = configSchema.parse({ matrix: testMatrixConfig() });
  running = await startHomeserver(config.matrix, dir, silentLogger);
  await running.hs.store.accounts.createUser({
    userId: ALICE,
    passwordHash: null,
    createdTs: 1,
    admin: false,
    deactivated: false,
    isGuest: false,
    displayname: null,
    avatarUrl: null,
  });
});
after(async () => {
  await running.close();
  rmSync(dir, { recursive: true, force: true });
});

test("v12: two rooms of the same creation content made in the same millisecond are two rooms", async () => {
  const { hs } = running;
  const now = Date.now();
  const clock = mock.method(Date, "now", () => now);
  try {
    const a = await hs.rooms.createRoom(ALICE, { room_version: "12", preset: "private_chat" });
    const b = await hs.rooms.createRoom(ALICE, { room_version: "12", preset: "private_chat" });
    assert.notEqual(a.roomId, b.roomId);
    for (const { roomId } of [a, b]) {
      const create = await hs.store.events.getCurrentStateEvent(roomId, "m.room.create", "");
      assert.equal(`!${create!.eventId.slice(1)}`, roomId, "each room ID is its own create event's hash");
      assert.equal(
        (await hs.store.events.getMembership(roomId, ALICE))?.membership,
        "join",
        "and alice is in each of them",
      );
    }
  } finally {
    clock.mock.restore();
  }
});
