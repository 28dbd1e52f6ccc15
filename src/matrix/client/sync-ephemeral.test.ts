import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { assertSpec } from "../../test/spec-schema.ts";
import { enc, startTestServer, type TestServer, type TestUser, V3 } from "./room-testkit.ts";

let srv: TestServer;
let alice: TestUser;
let bob: TestUser;
let roomId: string;

async function sync(u: TestUser, params: Record<string, string> = {}): Promise<any> {
  const r = await u.call("GET", `${V3}/sync?${new URLSearchParams(params)}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assertSpec("sync.yaml", "/sync", "GET", 200, r.body);
  return r.body;
}
let txn = 0;
async function send(u: TestUser, text: string, extra: Record<string, unknown> = {}): Promise<string> {
  const r = await u.call("PUT", `${V3}/rooms/${enc(roomId)}/send/m.room.message/e${++txn}`, {
    msgtype: "m.text",
    body: text,
    ...extra,
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.event_id;
}
const eph = (s: any, type: string) => s.rooms.join[roomId]?.ephemeral.events.find((e: any) => e.type === type);

before(async () => {
  srv = await startTestServer();
  alice = await srv.user("alice", { displayname: "Alice" });
  bob = await srv.user("bob", { displayname: "Bobby Tables" });
  roomId = (await alice.call("POST", `${V3}/createRoom`, { preset: "public_chat" })).body.room_id;
  assert.equal((await bob.call("POST", `${V3}/join/${enc(roomId)}`, {})).status, 200);
});
after(() => srv.close());

describe("/sync ephemeral and counts", () => {
  test("typing arrives in ephemeral, wakes a long-poll, and stops", async () => {
    const s0 = await sync(bob);
    const polling = sync(bob, { since: s0.next_batch, timeout: "20000" });
    await new Promise((r) => setTimeout(r, 50));
    const t = await alice.call("PUT", `${V3}/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, {
      typing: true,
      timeout: 10000,
    });
    assert.equal(t.status, 200);
    const s1 = await polling;
    assert.deepEqual(eph(s1, "m.typing").content.user_ids, [alice.userId]);
    assert.equal(
      (await alice.call("PUT", `${V3}/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, { typing: false })).status,
      200,
    );
    const s2 = await sync(bob, { since: s1.next_batch });
    assert.deepEqual(eph(s2, "m.typing").content.user_ids, []);
    // someone else's typing state, and rooms one is not in, are forbidden
    assert.equal(
      (await bob.call("PUT", `${V3}/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, { typing: true })).status,
      403,
    );
    assert.equal(
      (await bob.call("PUT", `${V3}/rooms/${enc(roomId)}/typing/${enc(bob.userId)}`, { typing: "yes" })).status,
      400,
    );
  });

  test("typing expires after its timeout", async () => {
    const s0 = await sync(bob);
    await alice.call("PUT", `${V3}/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, { typing: true, timeout: 100 });
    const s1 = await sync(bob, { since: s0.next_batch });
    assert.deepEqual(eph(s1, "m.typing").content.user_ids, [alice.userId]);
    const s2 = await sync(bob, { since: s1.next_batch, timeout: "5000" });
    assert.deepEqual(eph(s2, "m.typing").content.user_ids, []);
  });

  test("receipts: m.read reaches others in the spec shape, m.read.private only its owner; unread counts follow", async () => {
    const s0 = await sync(bob);
    const e1 = await send(alice, "hello there");
    const e2 = await send(alice, "are you there, Bobby Tables?");
    await send(alice, "a notice", { msgtype: "m.notice" });
    const s1 = await sync(bob, { since: s0.next_batch });
    assert.deepEqual(s1.rooms.join[roomId].unread_notifications, { notification_count: 2, highlight_count: 1 });

    assert.equal((await bob.call("POST", `${V3}/rooms/${enc(roomId)}/receipt/m.read/${enc(e1)}`, {})).status, 200);
    const s2 = await sync(alice, { since: s0.next_batch });
    const rc = eph(s2, "m.receipt");
    assert.ok(rc.content[e1]["m.read"][bob.userId].ts > 0);
    const bs = await sync(bob, { since: s1.next_batch });
    assert.deepEqual(bs.rooms.join[roomId].unread_notifications, { notification_count: 1, highlight_count: 1 });

    assert.equal(
      (await bob.call("POST", `${V3}/rooms/${enc(roomId)}/receipt/m.read.private/${enc(e2)}`, { thread_id: "main" }))
        .status,
      200,
    );
    const a3 = await sync(alice, { since: s2.next_batch });
    assert.equal(eph(a3, "m.receipt"), undefined, "private receipt hidden from others");
    const b3 = await sync(bob, { since: bs.next_batch });
    assert.deepEqual(eph(b3, "m.receipt").content[e2]["m.read.private"][bob.userId].thread_id, "main");
    assert.deepEqual(b3.rooms.join[roomId].unread_notifications, { notification_count: 0, highlight_count: 0 });

    assert.equal(
      (await bob.call("POST", `${V3}/rooms/${enc(roomId)}/receipt/m.read/${enc(e1)}`, { thread_id: "" })).body.errcode,
      "M_INVALID_PARAM",
    );
    assert.equal((await bob.call("POST", `${V3}/rooms/${enc(roomId)}/receipt/m.bogus/${enc(e1)}`, {})).status, 400);
    assert.equal((await bob.call("POST", `${V3}/rooms/${enc(roomId)}/receipt/m.read/${enc("$nope")}`, {})).status, 404);
  });

  test("read markers: m.fully_read becomes room account data, m.read a receipt", async () => {
    const s0 = await sync(bob);
    const e = await send(alice, "mark me");
    const r = await bob.call("POST", `${V3}/rooms/${enc(roomId)}/read_markers`, { "m.fully_read": e, "m.read": e });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const s1 = await sync(bob, { since: s0.next_batch });
    const ad = s1.rooms.join[roomId].account_data.events.find((x: any) => x.type === "m.fully_read");
    assert.deepEqual(ad.content, { event_id: e });
    assert.ok(eph(s1, "m.receipt").content[e]["m.read"][bob.userId]);
    const viaReceipt = await bob.call("POST", `${V3}/rooms/${enc(roomId)}/receipt/m.fully_read/${enc(e)}`, {});
    assert.equal(viaReceipt.status, 200);
  });

  test("presence: PUT/GET status and m.presence in /sync for users sharing a room", async () => {
    const s0 = await sync(bob, { set_presence: "offline" });
    const put = await alice.call("PUT", `${V3}/presence/${enc(alice.userId)}/status`, {
      presence: "unavailable",
      status_msg: "lunch",
    });
    assert.equal(put.status, 200);
    const got = await bob.call("GET", `${V3}/presence/${enc(alice.userId)}/status`);
    assert.equal(got.status, 200);
    assertSpec("presence.yaml", "/presence/{userId}/status", "GET", 200, got.body);
    assert.equal(got.body.presence, "unavailable");
    assert.equal(got.body.status_msg, "lunch");
    const s1 = await sync(bob, { since: s0.next_batch, set_presence: "offline" });
    const p = s1.presence.events.find((e: any) => e.sender === alice.userId);
    assert.equal(p.content.presence, "unavailable");
    assert.equal(
      (await bob.call("PUT", `${V3}/presence/${enc(alice.userId)}/status`, { presence: "online" })).status,
      403,
    );
    assert.equal((await bob.call("PUT", `${V3}/presence/${enc(bob.userId)}/status`, { presence: "busy" })).status, 400);
  });
});
