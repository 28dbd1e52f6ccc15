/** Conformance: the RoomStore — rooms and room aliases. */
import assert from "node:assert/strict";
import { event, ids, type MakeStore, member, receipt, room, seedRoom, storeTest } from "./helpers.ts";

const R = "!room:hs";

export function roomTests(make: MakeStore): void {
  storeTest(make, "rooms: create, get, publish, list, count; duplicate rejected", async (s) => {
    await s.rooms.createRoom(room("!c:hs", { isPublic: true }));
    await s.rooms.createRoom(room("!a:hs", { version: "10", creator: "@bob:hs", createdTs: 5 }));
    await s.rooms.createRoom(room("!b:hs", { isPublic: true }));
    assert.deepEqual(
      await s.rooms.getRoom("!a:hs"),
      room("!a:hs", { version: "10", creator: "@bob:hs", createdTs: 5 }),
    );
    assert.equal(await s.rooms.getRoom("!z:hs"), null);
    await assert.rejects(s.rooms.createRoom(room("!a:hs")));
    assert.deepEqual(await s.rooms.listPublicRoomIds(), ["!b:hs", "!c:hs"]);
    await s.rooms.setRoomPublic("!b:hs", false);
    await s.rooms.setRoomPublic("!a:hs", true);
    assert.deepEqual(await s.rooms.listPublicRoomIds(), ["!a:hs", "!c:hs"]);
    assert.equal((await s.rooms.getRoom("!a:hs"))?.isPublic, true);
    assert.deepEqual(
      (await s.rooms.listRooms({ limit: 10 })).map((r) => r.roomId),
      ["!a:hs", "!b:hs", "!c:hs"],
    );
    assert.deepEqual(
      (await s.rooms.listRooms({ limit: 1, from: "!a:hs" })).map((r) => r.roomId),
      ["!b:hs"],
    );
    assert.deepEqual(
      ids(await s.events.getRoomEvents({ roomId: "!a:hs", dir: "b", from: Number.MAX_SAFE_INTEGER, limit: 5 })),
      [],
    );
    assert.equal(await s.rooms.countRooms(), 3);
  });

  storeTest(make, "aliases: create (false if taken), get, delete, list per room", async (s) => {
    await s.rooms.createRoom(room(R));
    assert.equal(await s.rooms.createAlias("#a:hs", R, "@alice:hs"), true);
    assert.equal(await s.rooms.createAlias("#b:hs", R, "@bob:hs"), true);
    assert.equal(await s.rooms.createAlias("#a:hs", "!other:hs", "@bob:hs"), false);
    assert.deepEqual(await s.rooms.getAlias("#a:hs"), { roomId: R, creator: "@alice:hs" });
    assert.equal(await s.rooms.getAlias("#A:hs"), null);
    assert.deepEqual((await s.rooms.getAliasesForRoom(R)).sort(), ["#a:hs", "#b:hs"]);
    assert.deepEqual(await s.rooms.getAliasesForRoom("!other:hs"), []);
    assert.equal(await s.rooms.deleteAlias("#a:hs"), true);
    assert.equal(await s.rooms.deleteAlias("#a:hs"), false);
    assert.equal(await s.rooms.getAlias("#a:hs"), null);
    assert.equal(await s.rooms.createAlias("#a:hs", "!other:hs", "@bob:hs"), true, "a deleted alias can be reused");
  });

  storeTest(make, "moveAliases: every alias of a room now names another, creators kept", async (s) => {
    await s.rooms.createRoom(room(R));
    await s.rooms.createRoom(room("!new:hs"));
    await s.rooms.createRoom(room("!third:hs"));
    await s.rooms.createAlias("#b:hs", R, "@bob:hs");
    await s.rooms.createAlias("#a:hs", R, "@alice:hs");
    await s.rooms.createAlias("#c:hs", "!third:hs", "@carol:hs");
    assert.deepEqual(await s.rooms.moveAliases(R, "!new:hs"), ["#a:hs", "#b:hs"]);
    assert.deepEqual(await s.rooms.getAlias("#a:hs"), { roomId: "!new:hs", creator: "@alice:hs" });
    assert.deepEqual(await s.rooms.getAliasesForRoom(R), []);
    assert.deepEqual(await s.rooms.getAliasesForRoom("!new:hs"), ["#a:hs", "#b:hs"]);
    assert.deepEqual(await s.rooms.getAliasesForRoom("!third:hs"), ["#c:hs"], "other rooms' aliases stay");
    assert.deepEqual(await s.rooms.moveAliases(R, "!new:hs"), [], "nothing left to move");
  });

  storeTest(make, "purgeRoom: every trace of one room goes, in one go; another room is untouched", async (s) => {
    const O = "!other:hs";
    const thread = { "m.relates_to": { rel_type: "m.thread", event_id: "$ev2" } };
    await seedRoom(s, R, [
      member(1, R, "@alice:hs", "join"),
      event(2, R, "m.room.message", { content: { body: "purge me" } }),
      event(3, R, "m.room.message", { content: { body: "reply", ...thread } }),
    ]);
    await seedRoom(s, O, [
      member(4, O, "@alice:hs", "join"),
      event(5, O, "m.room.message", { content: { body: "keep" } }),
    ]);
    await s.rooms.createAlias("#gone:hs", R, "@alice:hs");
    await s.rooms.createAlias("#kept:hs", O, "@alice:hs");
    await s.ephemeral.setReceipt(receipt(2, R, "@alice:hs", "m.read", null));
    await s.ephemeral.setReceipt(receipt(5, O, "@alice:hs", "m.read", null));
    await s.accountData.setAccountData({ userId: "@alice:hs", roomId: R, type: "m.tag", content: {}, stream: 6 });
    await s.accountData.setAccountData({ userId: "@alice:hs", roomId: null, type: "m.direct", content: {}, stream: 7 });

    assert.equal(await s.rooms.purgeRoom(R), 3);
    assert.equal(await s.rooms.getRoom(R), null);
    assert.equal(await s.events.getEvent("$ev2"), null);
    assert.deepEqual(await s.events.getCurrentState(R), []);
    assert.equal(await s.events.getMembership(R, "@alice:hs"), null);
    assert.deepEqual(await s.rooms.getAliasesForRoom(R), []);
    assert.deepEqual(
      (await s.ephemeral.getUserReceipts("@alice:hs", [R, O])).map((r) => r.roomId),
      [O],
    );
    // What belongs to the other room, and global account data, stay.
    assert.ok(await s.rooms.getRoom(O));
    assert.equal((await s.events.getEvent("$ev5"))?.roomId, O);
    assert.deepEqual(await s.rooms.getAliasesForRoom(O), ["#kept:hs"]);
    assert.equal(await s.rooms.purgeRoom(R), 0, "a second purge finds nothing");
  });
}
