/** The core /sync flow on PostgreSQL: initial sync, long-poll wake-up, typing, receipts, incremental sync. */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { assertSpec } from "../../test/spec-schema.ts";
import { enc, startTestServer, type TestServer, type TestUser, V3 } from "./room-testkit.ts";

let srv: TestServer;
let alice: TestUser;
let bob: TestUser;

before(async () => {
  srv = await startTestServer({ backend: "postgres" });
  alice = await srv.user("alice");
  bob = await srv.user("bob");
});
after(() => srv.close());

async function sync(u: TestUser, params: Record<string, string> = {}): Promise<any> {
  const r = await u.call("GET", `${V3}/sync?${new URLSearchParams(params)}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assertSpec("sync.yaml", "/sync", "GET", 200, r.body);
  return r.body;
}

test("core /sync flow on PostgreSQL", async () => {
  const roomId = (await alice.call("POST", `${V3}/createRoom`, { preset: "public_chat", name: "PG" })).body.room_id;
  assert.equal((await bob.call("POST", `${V3}/join/${enc(roomId)}`, {})).status, 200);
  const s0 = await sync(bob, { filter: JSON.stringify({ room: { state: { lazy_load_members: true } } }) });
  assert.equal(s0.rooms.join[roomId].summary["m.joined_member_count"], 2);

  const polling = sync(bob, { since: s0.next_batch, timeout: "20000" });
  await new Promise((r) => setTimeout(r, 50));
  const sent = await alice.call("PUT", `${V3}/rooms/${enc(roomId)}/send/m.room.message/pg1`, {
    msgtype: "m.text",
    body: "hi bob",
  });
  assert.equal(sent.status, 200);
  const s1 = await polling;
  assert.deepEqual(
    s1.rooms.join[roomId].timeline.events.map((e: any) => e.content.body),
    ["hi bob"],
  );
  assert.equal(s1.rooms.join[roomId].unread_notifications.notification_count, 1);

  await alice.call("PUT", `${V3}/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, { typing: true, timeout: 5000 });
  await bob.call("POST", `${V3}/rooms/${enc(roomId)}/receipt/m.read/${enc(sent.body.event_id)}`, {});
  const s2 = await sync(bob, { since: s1.next_batch });
  const types = s2.rooms.join[roomId].ephemeral.events.map((e: any) => e.type).sort();
  assert.deepEqual(types, ["m.receipt", "m.typing"]);
  assert.equal(s2.rooms.join[roomId].unread_notifications.notification_count, 0);
});
