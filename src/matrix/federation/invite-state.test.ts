/**
 * Room version 12 invites and knocks: the stripped state's m.room.create must be the room's (its hash is the room
 * ID). Checked on the create event a real homeserver stores for a v12 room (what inviteRemote sends).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { homeserverPerFile } from "../../../test/e2e/helpers/homeserver.ts";
import { signEvent } from "../events/event-signing.ts";
import { generateSigningKey } from "../events/signing.ts";
import { strippedCreateProblem } from "./membership.ts";

const ALICE = "@alice:localhost";

const server = homeserverPerFile("ami-invite-state-", { users: [ALICE] });

test("v12 stripped state: the room's own create event passes; none, another room's or an altered one does not", async () => {
  const { hs } = server.running;
  const { roomId } = await hs.rooms.createRoom(ALICE, { room_version: "12" });
  const create = (await hs.store.events.getCurrentStateEvent(roomId, "m.room.create", ""))!.pdu as Record<
    string,
    unknown
  >;
  const name = { type: "m.room.name", state_key: "", sender: ALICE, content: { name: "n" } };
  assert.equal(strippedCreateProblem([name, create], roomId, "12"), null, "the room's own create event");
  assert.match(String(strippedCreateProblem([name], roomId, "12")), /no m.room.create/);
  // A forged create (another creator, room type and additional creators) signed by the inviting server.
  const forged = signEvent(
    {
      type: "m.room.create",
      state_key: "",
      sender: "@mallory:evil.test",
      content: { room_version: "12", additional_creators: ["@mallory:evil.test"] },
      origin_server_ts: 1,
      depth: 1,
      prev_events: [],
      auth_events: [],
    },
    "evil.test",
    generateSigningKey(),
    "12",
  ) as Record<string, unknown>;
  assert.match(String(strippedCreateProblem([forged], roomId, "12")), /not the room's create/);
  // The room's create event with its content changed (its reference hash still names the room: the content hash
  // does not hold).
  const altered = {
    ...create,
    content: { ...(create.content as object), additional_creators: ["@mallory:evil.test"] },
  };
  assert.match(String(strippedCreateProblem([altered], roomId, "12")), /not the room's create/);
  assert.match(String(strippedCreateProblem([create, forged], roomId, "12")), /not the room's create/);
  // A stripped (not a PDU) create event.
  const bare = { type: "m.room.create", state_key: "", sender: ALICE, content: create.content };
  assert.match(String(strippedCreateProblem([bare], roomId, "12")), /not the room's create/);
  // Older versions: nothing to check against.
  assert.equal(strippedCreateProblem([], "!r:localhost", "11"), null);
});
