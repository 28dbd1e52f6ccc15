/** Conformance: the Store as a whole — getMaxStream across areas, init/close/reopen durability. */
import assert from "node:assert/strict";
import type { Store } from "../types.ts";
import { event, type MakeStore, member, seedRoom, storeTest, user } from "./helpers.ts";

const R = "!room:hs";

export function storeTests(make: MakeStore): void {
  storeTest(make, "getMaxStream covers events, account data, receipts and presence", async (s) => {
    assert.equal(await s.getMaxStream(), 0);
    await seedRoom(s, R, [event(3, R, "m.room.create", { stateKey: "" })]);
    assert.equal(await s.getMaxStream(), 3);
    await s.accountData.setAccountData({
      userId: "@alice:hs",
      roomId: null,
      type: "m.push_rules",
      content: {},
      stream: 10,
    });
    assert.equal(await s.getMaxStream(), 10);
    await s.ephemeral.setReceipt({
      roomId: R,
      userId: "@alice:hs",
      type: "m.read",
      eventId: "$ev3",
      threadId: null,
      ts: 1,
      stream: 12,
    });
    assert.equal(await s.getMaxStream(), 12);
    await s.ephemeral.setPresence({
      userId: "@alice:hs",
      presence: "online",
      statusMsg: null,
      lastActiveTs: 1,
      stream: 15,
    });
    assert.equal(await s.getMaxStream(), 15);
    await s.events.persistEvent(event(20, R, "m.room.message"));
    assert.equal(await s.getMaxStream(), 20);
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
