/** Conformance: references that must exist, and text both backends can store (no NUL outside JSON). */
import assert from "node:assert/strict";
import { AmiError } from "../../../core/errors.ts";
import { event, type MakeStore, rejectsWith, room, storeTest, user } from "./helpers.ts";

const R = "!room:hs";

/** A read given a NUL may find nothing or refuse the input; it must not fail any other way. */
async function nullOrInvalid(p: Promise<unknown>): Promise<void> {
  try {
    const v = await p;
    assert.ok(v === null || (Array.isArray(v) && v.length === 0), `expected nothing, got ${JSON.stringify(v)}`);
  } catch (e) {
    assert.ok(e instanceof AmiError && e.code === "M_INVALID_PARAM", `unexpected ${String(e)}`);
  }
}

export function integrityTests(make: MakeStore): void {
  storeTest(make, "integrity: events need their room, devices their user, tokens their device", async (s) => {
    await rejectsWith(s.events.persistEvent(event(1, "!nowhere:hs", "m.room.create", { stateKey: "" })), "M_UNKNOWN");
    assert.equal(await s.events.getEvent("$ev1"), null);
    assert.equal(await s.getMaxStream(), 0);
    assert.deepEqual(await s.events.getCurrentState("!nowhere:hs"), []);
    const dev = {
      userId: "@ghost:hs",
      deviceId: "D",
      displayName: null,
      createdTs: 1,
      lastSeenTs: null,
      lastSeenIp: null,
    };
    await rejectsWith(s.accounts.upsertDevice(dev), "M_UNKNOWN");
    await s.accounts.createUser(user("@alice:hs"));
    await rejectsWith(
      s.accounts.createToken({ tokenHash: "h", userId: "@alice:hs", deviceId: "NOPE", createdTs: 1 }),
      "M_UNKNOWN",
    );
    assert.equal(await s.accounts.getToken("h"), null);
  });

  storeTest(make, "text with NUL: refused on write (M_INVALID_PARAM), never an internal error on read", async (s) => {
    await rejectsWith(s.accounts.createUser(user("@a\u0000:hs")), "M_INVALID_PARAM");
    await rejectsWith(s.accounts.createUser(user("@a:hs", { displayname: "x\u0000y" })), "M_INVALID_PARAM");
    assert.equal(await s.accounts.countUsers(), 0);
    await s.rooms.createRoom(room(R));
    await rejectsWith(s.events.persistEvent(event(1, R, "m.room\u0000message")), "M_INVALID_PARAM");
    await rejectsWith(s.events.persistEvent(event(1, R, "m.room.topic", { stateKey: "\u0000" })), "M_INVALID_PARAM");
    assert.equal(await s.getMaxStream(), 0);
    // NUL inside JSON content is fine: JSON escapes it.
    await s.events.persistEvent(event(1, R, "m.room.message", { content: { body: "a\u0000b" } }));
    assert.equal((await s.events.getEvent("$ev1"))?.pdu.content.body, "a\u0000b");
    await nullOrInvalid(s.accounts.getUser("@a\u0000:hs"));
    await nullOrInvalid(s.events.getEvent("$\u0000"));
    await nullOrInvalid(s.events.getCurrentStateEvent(R, "m.room.topic", "\u0000"));
    await nullOrInvalid(s.accountData.getFilter("@a\u0000:hs", "1"));
    await nullOrInvalid(s.events.getRoomEvents({ roomId: R, dir: "b", from: 100, limit: 5, types: ["\u0000*"] }));
  });
}
