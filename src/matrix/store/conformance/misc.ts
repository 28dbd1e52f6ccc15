/** Conformance: aliases, account data, receipts, presence, filters, media, and durability across reopen. */
import assert from "node:assert/strict";
import type { Store } from "../types.ts";
import { event, type MakeStore, member, rejectsWith, room, seedRoom, storeTest, user } from "./helpers.ts";

const R = "!room:hs";

export function miscTests(make: MakeStore): void {
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

  storeTest(make, "account data: upsert per (user, room|global, type), read, since", async (s) => {
    const ad = (roomId: string | null, type: string, content: object, stream: number, userId = "@alice:hs") => ({
      userId,
      roomId,
      type,
      content,
      stream,
    });
    await s.accountData.setAccountData(ad(null, "m.push_rules", { v: 1 }, 1));
    await s.accountData.setAccountData(ad(R, "m.tag", { tags: {} }, 2));
    await s.accountData.setAccountData(ad(null, "m.tag", { global: true }, 3));
    await s.accountData.setAccountData(ad(null, "m.push_rules", { v: 1 }, 4, "@bob:hs"));
    assert.deepEqual(
      await s.accountData.getAccountData("@alice:hs", null, "m.push_rules"),
      ad(null, "m.push_rules", { v: 1 }, 1),
    );
    assert.deepEqual(await s.accountData.getAccountData("@alice:hs", R, "m.tag"), ad(R, "m.tag", { tags: {} }, 2));
    assert.deepEqual(
      await s.accountData.getAccountData("@alice:hs", null, "m.tag"),
      ad(null, "m.tag", { global: true }, 3),
    );
    assert.equal(await s.accountData.getAccountData("@alice:hs", R, "m.push_rules"), null);
    assert.equal(await s.accountData.getAccountData("@carol:hs", null, "m.push_rules"), null);

    await s.accountData.setAccountData(ad(null, "m.push_rules", { v: 2, nested: { "ü\u0000": [1] } }, 5));
    assert.deepEqual((await s.accountData.getAccountData("@alice:hs", null, "m.push_rules"))?.content, {
      v: 2,
      nested: { "ü\u0000": [1] },
    });
    const since = async (n: number, u = "@alice:hs") =>
      (await s.accountData.getAccountDataSince(u, n)).map((r) => `${r.roomId ?? "-"}/${r.type}@${r.stream}`).sort();
    assert.deepEqual(await since(0), [`${R}/m.tag@2`, "-/m.push_rules@5", "-/m.tag@3"].sort());
    assert.deepEqual(await since(2), ["-/m.push_rules@5", "-/m.tag@3"]);
    assert.deepEqual(await since(5), []);
    assert.deepEqual(await since(0, "@bob:hs"), ["-/m.push_rules@4"]);
  });

  storeTest(make, "receipts: upsert by (room, user, type, thread), since", async (s) => {
    const rc = (
      roomId: string,
      userId: string,
      type: string,
      threadId: string | null,
      eventId: string,
      stream: number,
    ) => ({
      roomId,
      userId,
      type,
      eventId,
      threadId,
      ts: 1000 + stream,
      stream,
    });
    await s.ephemeral.setReceipt(rc(R, "@alice:hs", "m.read", null, "$1", 1));
    await s.ephemeral.setReceipt(rc(R, "@alice:hs", "m.read", "main", "$2", 2));
    await s.ephemeral.setReceipt(rc(R, "@alice:hs", "m.read.private", null, "$3", 3));
    await s.ephemeral.setReceipt(rc(R, "@bob:hs", "m.read", null, "$3", 4));
    await s.ephemeral.setReceipt(rc("!b:hs", "@alice:hs", "m.read", null, "$9", 5));
    await s.ephemeral.setReceipt(rc(R, "@alice:hs", "m.read", null, "$4", 6)); // moves alice's unthreaded receipt
    assert.deepEqual(
      await s.ephemeral.getReceipt(R, "@alice:hs", "m.read", null),
      rc(R, "@alice:hs", "m.read", null, "$4", 6),
    );
    assert.deepEqual(
      await s.ephemeral.getReceipt(R, "@alice:hs", "m.read", "main"),
      rc(R, "@alice:hs", "m.read", "main", "$2", 2),
    );
    assert.equal(await s.ephemeral.getReceipt(R, "@alice:hs", "m.read", "$thread"), null);
    assert.equal(await s.ephemeral.getReceipt(R, "@carol:hs", "m.read", null), null);
    const since = async (rooms: string[], n: number) =>
      (await s.ephemeral.getReceiptsSince(rooms, n))
        .map((r) => `${r.userId}/${r.type}/${r.threadId}=${r.eventId}@${r.stream}`)
        .sort();
    assert.deepEqual(await since([R], 0), [
      "@alice:hs/m.read.private/null=$3@3",
      "@alice:hs/m.read/main=$2@2",
      "@alice:hs/m.read/null=$4@6",
      "@bob:hs/m.read/null=$3@4",
    ]);
    assert.deepEqual(await since([R], 3), ["@alice:hs/m.read/null=$4@6", "@bob:hs/m.read/null=$3@4"]);
    assert.deepEqual(await since([R, "!b:hs"], 4), ["@alice:hs/m.read/null=$4@6", "@alice:hs/m.read/null=$9@5"]);
    assert.deepEqual(await since([], 0), []);
    assert.deepEqual(await since(["!none:hs"], 0), []);
  });

  storeTest(make, "presence: upsert, get, since", async (s) => {
    const p = (userId: string, presence: string, stream: number, statusMsg: string | null = null) => ({
      userId,
      presence,
      statusMsg,
      lastActiveTs: 500 + stream,
      stream,
    });
    await s.ephemeral.setPresence(p("@alice:hs", "online", 1, "hi"));
    await s.ephemeral.setPresence(p("@bob:hs", "unavailable", 2));
    await s.ephemeral.setPresence(p("@carol:hs", "online", 3));
    await s.ephemeral.setPresence(p("@alice:hs", "offline", 4));
    assert.deepEqual(await s.ephemeral.getPresence("@alice:hs"), p("@alice:hs", "offline", 4));
    assert.equal(await s.ephemeral.getPresence("@dan:hs"), null);
    const since = async (users: string[], n: number) =>
      (await s.ephemeral.getPresenceSince(users, n)).map((r) => r.userId).sort();
    assert.deepEqual(await since(["@alice:hs", "@bob:hs", "@dan:hs"], 0), ["@alice:hs", "@bob:hs"]);
    assert.deepEqual(await since(["@alice:hs", "@bob:hs", "@carol:hs"], 2), ["@alice:hs", "@carol:hs"]);
    assert.deepEqual(await since([], 0), []);
  });

  storeTest(make, "filters: decimal IDs, per user, unknown or malformed IDs are null", async (s) => {
    const f = {
      room: { timeline: { limit: 10, types: ["m.room.*"] }, lazy_load_members: true },
      presence: { not_types: ["*"] },
    };
    const id1 = await s.accountData.createFilter("@alice:hs", f);
    const id2 = await s.accountData.createFilter("@alice:hs", {});
    const id3 = await s.accountData.createFilter("@bob:hs", { x: 1 });
    for (const id of [id1, id2, id3]) assert.match(id, /^[0-9]+$/);
    assert.equal(new Set([id1, id2, id3]).size, 3);
    assert.deepEqual(await s.accountData.getFilter("@alice:hs", id1), f);
    assert.deepEqual(await s.accountData.getFilter("@alice:hs", id2), {});
    assert.equal(await s.accountData.getFilter("@bob:hs", id1), null, "another user's filter is not visible");
    for (const bad of ["", "abc", "-1", "1.5", "99999999999999999999999", "1; DROP TABLE filters", " 1"])
      assert.equal(await s.accountData.getFilter("@alice:hs", bad), null, `filter id ${JSON.stringify(bad)}`);
    assert.equal(await s.accountData.getFilter("@alice:hs", "424242"), null);
  });

  storeTest(make, "media: put, get, duplicate ID rejected", async (s) => {
    const m = {
      mediaId: "AbC123",
      uploader: "@alice:hs",
      contentType: "image/png",
      filename: "a b ü.png",
      size: 1234,
      sha256: "00ff",
      createdTs: 99,
    };
    await s.media.putMedia(m);
    await s.media.putMedia({ ...m, mediaId: "x2", filename: null, size: 0 });
    assert.deepEqual(await s.media.getMedia("AbC123"), m);
    assert.deepEqual(await s.media.getMedia("x2"), { ...m, mediaId: "x2", filename: null, size: 0 });
    assert.equal(await s.media.getMedia("abc123"), null);
    await rejectsWith(s.media.putMedia(m), "M_CANNOT_OVERWRITE_MEDIA");
  });

  storeTest(make, "init() is idempotent and the data survives close() and reopen", async (s, h) => {
    await s.init();
    await s.accounts.createUser(user("@alice:hs", { displayname: "Alice" }));
    await s.accounts.upsertDevice({
      userId: "@alice:hs",
      deviceId: "D1",
      displayName: null,
      createdTs: 1,
      lastSeenTs: null,
      lastSeenIp: null,
    });
    await s.accounts.createToken({ tokenHash: "h", userId: "@alice:hs", deviceId: "D1", createdTs: 1 });
    await seedRoom(s, R, [event(1, R, "m.room.create", { stateKey: "" }), member(2, R, "@alice:hs", "join")]);
    await s.events.persistEvent({
      ...event(3, R, "m.room.message", { content: { body: "persisted" } }),
      txn: { userId: "@alice:hs", deviceId: "D1", scope: "S", txnId: "t" },
    });
    await s.accountData.setAccountData({
      userId: "@alice:hs",
      roomId: null,
      type: "m.x",
      content: { a: 1 },
      stream: 4,
    });
    await s.ephemeral.setReceipt({
      roomId: R,
      userId: "@alice:hs",
      type: "m.read",
      eventId: "$ev3",
      threadId: null,
      ts: 1,
      stream: 5,
    });
    await s.ephemeral.setPresence({
      userId: "@alice:hs",
      presence: "online",
      statusMsg: null,
      lastActiveTs: 1,
      stream: 6,
    });
    const filterId = await s.accountData.createFilter("@alice:hs", { a: 1 });
    await s.rooms.createAlias("#r:hs", R, "@alice:hs");
    await s.close();
    await s.close(); // closing twice is harmless

    const r: Store = await h.reopen();
    try {
      assert.equal((await r.accounts.getUser("@alice:hs"))?.displayname, "Alice");
      assert.equal((await r.accounts.getToken("h"))?.deviceId, "D1");
      assert.equal((await r.events.getEvent("$ev3"))?.pdu.content.body, "persisted");
      assert.equal(await r.events.getTxnEvent("@alice:hs", "D1", "S", "t"), "$ev3");
      assert.equal((await r.events.getMembership(R, "@alice:hs"))?.membership, "join");
      assert.equal((await r.events.getCurrentState(R)).length, 2);
      assert.equal(await r.getMaxStream(), 6);
      assert.deepEqual(await r.accountData.getFilter("@alice:hs", filterId), { a: 1 });
      assert.equal((await r.rooms.getAlias("#r:hs"))?.roomId, R);
      const next = await r.accountData.createFilter("@alice:hs", {});
      assert.notEqual(next, filterId, "filter IDs are not reused after a reopen");
      await r.events.persistEvent(event(7, R, "m.room.message"));
      assert.equal((await r.events.getLatestEvent(R))?.stream, 7);
    } finally {
      await r.close();
    }
  });
}
