/** createRoom on a real homeserver (SQLite): room version 12's room ID, the create event's hash. */
import assert from "node:assert/strict";
import { mock, test } from "node:test";
import { homeserverPerFile } from "../../../test/e2e/helpers/homeserver.ts";

const ALICE = "@alice:localhost";

const server = homeserverPerFile("ami-room-create-", { users: [ALICE] });

test("v12: two rooms of the same creation content made in the same millisecond are two rooms", async () => {
  const { hs } = server.running;
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
