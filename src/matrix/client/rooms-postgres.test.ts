/** The core room flow against PostgreSQL (the other backend behind the same store interface). */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { enc, startTestServer, type TestServer, type TestUser, V3 } from "./room-testkit.ts";

let srv: TestServer;
let alice: TestUser;
let bob: TestUser;

before(async () => {
  srv = await startTestServer({ backend: "postgres" });
  alice = await srv.user("alice", { displayname: "Alice" });
  bob = await srv.user("bob");
});
after(() => srv?.close());

test("postgres: create, invite, join, send with txn, paginate, redact, leave", async () => {
  const r = await alice.call("POST", `${V3}/createRoom`, { name: "PG", invite: [bob.userId], room_alias_name: "pg" });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const room = `${V3}/rooms/${enc(r.body.room_id)}`;
  assert.equal((await bob.call("POST", `${V3}/join/${enc("#pg:rooms.test")}`, {})).status, 200);
  const ids: string[] = [];
  for (let i = 0; i < 12; i++) {
    const s = await (i % 2 ? bob : alice).call("PUT", `${room}/send/m.room.message/t${i}`, {
      msgtype: "m.text",
      body: `m${i}`,
    });
    assert.equal(s.status, 200);
    ids.push(s.body.event_id);
  }
  assert.equal(
    (await alice.call("PUT", `${room}/send/m.room.message/t0`, { msgtype: "m.text", body: "m0" })).body.event_id,
    ids[0],
  );
  const got: string[] = [];
  let from: string | undefined;
  for (;;) {
    const p = await bob.call(
      "GET",
      `${room}/messages?dir=b&limit=5${from ? `&from=${enc(from)}` : ""}&filter=${enc('{"types":["m.room.message"]}')}`,
    );
    assert.equal(p.status, 200, JSON.stringify(p.body));
    got.push(...p.body.chunk.map((e: any) => e.event_id));
    if (!p.body.end) break;
    from = p.body.end;
  }
  assert.deepEqual(got, [...ids].reverse());
  assert.equal((await bob.call("PUT", `${room}/redact/${enc(ids[1])}/r`, {})).status, 200);
  const ev = await alice.call("GET", `${room}/event/${enc(ids[1])}`);
  assert.deepEqual(ev.body.content, {});
  assert.ok(ev.body.unsigned.redacted_because);
  assert.equal((await bob.call("PUT", `${room}/state/m.room.name/`, { name: "nope" })).status, 403);
  assert.equal((await bob.call("POST", `${room}/leave`, {})).status, 200);
  assert.deepEqual((await bob.call("GET", `${V3}/joined_rooms`)).body.joined_rooms, []);
  const members = await alice.call("GET", `${room}/members?membership=leave`);
  assert.deepEqual(
    members.body.chunk.map((e: any) => e.state_key),
    [bob.userId],
  );
});
