import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { assertSpec } from "../../test/spec-schema.ts";
import { enc, startTestServer, type TestServer, type TestUser, V3 } from "./room-testkit.ts";

let srv: TestServer;
let alice: TestUser;
let bob: TestUser;
let roomId: string;
const room = () => `${V3}/rooms/${enc(roomId)}`;

before(async () => {
  srv = await startTestServer();
  alice = await srv.user("alice", { displayname: "Alice" });
  bob = await srv.user("bob", { displayname: "Bob" });
  roomId = (await alice.call("POST", `${V3}/createRoom`, { preset: "public_chat", name: "Pages" })).body.room_id;
  await bob.call("POST", `${room()}/join`, {});
  for (let i = 0; i < 25; i++) {
    const who = i % 2 === 0 ? alice : bob;
    const r = await who.call("PUT", `${room()}/send/m.room.message/m${i}`, { msgtype: "m.text", body: `msg ${i}` });
    assert.equal(r.status, 200);
  }
  await alice.call("PUT", `${room()}/send/org.example.file/f1`, { url: "mxc://rooms.test/abc", body: "file" });
});
after(() => srv.close());

async function pageAll(u: TestUser, dir: "b" | "f", extra = ""): Promise<any[]> {
  const out: any[] = [];
  let from: string | undefined;
  for (let n = 0; n < 100; n++) {
    const r = await u.call("GET", `${room()}/messages?dir=${dir}&limit=7${from ? `&from=${enc(from)}` : ""}${extra}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assertSpec("message_pagination.yaml", "/rooms/{roomId}/messages", "GET", 200, r.body);
    out.push(...r.body.chunk);
    if (!r.body.end) return out;
    from = r.body.end;
  }
  throw new Error("pagination did not end");
}

describe("messages", () => {
  test("backwards pagination returns the full history newest first; forwards oldest first", async () => {
    const back = await pageAll(bob, "b");
    const msgs = back.filter((e) => e.type === "m.room.message").map((e) => e.content.body);
    assert.deepEqual(
      msgs,
      Array.from({ length: 25 }, (_, i) => `msg ${24 - i}`),
    );
    assert.equal(back[back.length - 1].type, "m.room.create");
    const fwd = await pageAll(bob, "f");
    assert.deepEqual(
      fwd.map((e) => e.event_id),
      back.map((e) => e.event_id).reverse(),
    );
    assert.equal(new Set(fwd.map((e) => e.event_id)).size, fwd.length, "no duplicates across pages");
  });

  test("filters: types, not_senders, contains_url, lazy_load_members", async () => {
    const onlyMsgs = await pageAll(bob, "b", `&filter=${enc(JSON.stringify({ types: ["m.room.message"] }))}`);
    assert.equal(onlyMsgs.length, 25);
    const notBob = await pageAll(
      bob,
      "b",
      `&filter=${enc(JSON.stringify({ types: ["m.room.message"], not_senders: [bob.userId] }))}`,
    );
    assert.equal(notBob.length, 13);
    assert.ok(notBob.every((e) => e.sender === alice.userId));
    const urls = await pageAll(bob, "b", `&filter=${enc(JSON.stringify({ contains_url: true }))}`);
    assert.deepEqual(
      urls.map((e) => e.type),
      ["org.example.file"],
    );
    const wild = await pageAll(bob, "b", `&filter=${enc(JSON.stringify({ types: ["org.example.*"] }))}`);
    assert.equal(wild.length, 1);
    const lazy = await bob.call(
      "GET",
      `${room()}/messages?dir=b&limit=4&filter=${enc(JSON.stringify({ lazy_load_members: true }))}`,
    );
    const senders = new Set(lazy.body.chunk.map((e: any) => e.sender));
    assert.deepEqual(new Set(lazy.body.state.map((e: any) => e.state_key)), senders);
    assert.ok(lazy.body.state.every((e: any) => e.type === "m.room.member"));
  });

  test("a sync token is accepted as `from`, and `to` bounds a page", async () => {
    const head = await bob.call("GET", `${room()}/messages?dir=b&limit=3`);
    const latest = srv.hs.stream.current;
    const viaSync = await bob.call("GET", `${room()}/messages?dir=b&limit=3&from=s${latest}_0`);
    assert.equal(viaSync.status, 200, JSON.stringify(viaSync.body));
    assert.deepEqual(
      viaSync.body.chunk.map((e: any) => e.event_id),
      head.body.chunk.map((e: any) => e.event_id),
    );
    const bounded = await bob.call("GET", `${room()}/messages?dir=b&limit=50&to=${enc(head.body.end)}`);
    assert.deepEqual(
      bounded.body.chunk.map((e: any) => e.event_id),
      head.body.chunk.map((e: any) => e.event_id),
    );
  });
});

describe("sending", () => {
  test("a repeated txnId returns the same event ID and stores one event", async () => {
    const a = await alice.call("PUT", `${room()}/send/m.room.message/same`, { msgtype: "m.text", body: "once" });
    const b = await alice.call("PUT", `${room()}/send/m.room.message/same`, { msgtype: "m.text", body: "once" });
    assert.equal(a.status, 200);
    assertSpec("room_send.yaml", "/rooms/{roomId}/send/{eventType}/{txnId}", "PUT", 200, a.body);
    assert.equal(b.body.event_id, a.body.event_id);
    const concurrent = await Promise.all(
      Array.from({ length: 5 }, () =>
        alice.call("PUT", `${room()}/send/m.room.message/race`, { msgtype: "m.text", body: "race" }),
      ),
    );
    assert.equal(new Set(concurrent.map((r) => r.body.event_id)).size, 1);
    const recent = await alice.call("GET", `${room()}/messages?dir=b&limit=5`);
    assert.equal(recent.body.chunk.filter((e: any) => e.content.body === "once").length, 1);
    assert.equal(recent.body.chunk.filter((e: any) => e.content.body === "race").length, 1);
    const own = recent.body.chunk.find((e: any) => e.content.body === "once");
    assert.equal(own.unsigned.transaction_id, "same");
    const seenByBob = (await bob.call("GET", `${room()}/messages?dir=b&limit=5`)).body.chunk.find(
      (e: any) => e.content.body === "once",
    );
    assert.equal(seenByBob.unsigned.transaction_id, undefined);
  });

  test("redaction strips content and carries redacted_because; others' events need the redact level", async () => {
    const sent = await bob.call("PUT", `${room()}/send/m.room.message/secret`, { msgtype: "m.text", body: "secret" });
    const mine = await alice.call("PUT", `${room()}/send/m.room.message/alices`, {
      msgtype: "m.text",
      body: "alice's",
    });
    const denied = await bob.call("PUT", `${room()}/redact/${enc(mine.body.event_id)}/r0`, {});
    assert.equal(denied.status, 403);
    const red = await bob.call("PUT", `${room()}/redact/${enc(sent.body.event_id)}/r1`, { reason: "oops" });
    assert.equal(red.status, 200, JSON.stringify(red.body));
    assertSpec("redaction.yaml", "/rooms/{roomId}/redact/{eventId}/{txnId}", "PUT", 200, red.body);
    const again = await bob.call("PUT", `${room()}/redact/${enc(sent.body.event_id)}/r1`, { reason: "oops" });
    assert.equal(again.body.event_id, red.body.event_id);
    const ev = await alice.call("GET", `${room()}/event/${enc(sent.body.event_id)}`);
    assert.equal(ev.status, 200);
    assert.deepEqual(ev.body.content, {});
    assert.equal(ev.body.unsigned.redacted_because.event_id, red.body.event_id);
    assert.equal(ev.body.unsigned.redacted_because.content.reason, "oops");
    assertSpec("rooms.yaml", "/rooms/{roomId}/event/{eventId}", "GET", 200, ev.body);
    // the admin may redact anyone's event
    const adminRed = await alice.call("PUT", `${room()}/redact/${enc(mine.body.event_id)}/r2`, {});
    assert.equal(adminRed.status, 200);
  });
});

describe("context, members", () => {
  test("context returns events around the event and the state", async () => {
    const all = await bob.call(
      "GET",
      `${room()}/messages?dir=b&limit=30&filter=${enc(JSON.stringify({ types: ["m.room.message"] }))}`,
    );
    const mid = all.body.chunk.find((e: any) => e.content.body === "msg 10");
    const ctx = await bob.call(
      "GET",
      `${room()}/context/${enc(mid.event_id)}?limit=4&filter=${enc(JSON.stringify({ types: ["m.room.message"] }))}`,
    );
    assert.equal(ctx.status, 200, JSON.stringify(ctx.body));
    assertSpec("event_context.yaml", "/rooms/{roomId}/context/{eventId}", "GET", 200, ctx.body);
    assert.equal(ctx.body.event.event_id, mid.event_id);
    assert.deepEqual(
      ctx.body.events_before.map((e: any) => e.content.body),
      ["msg 9", "msg 8"],
    );
    assert.deepEqual(
      ctx.body.events_after.map((e: any) => e.content.body),
      ["msg 11", "msg 12"],
    );
    assert.ok(ctx.body.state.some((e: any) => e.type === "m.room.create"));
    // `start` continues backwards before events_before
    const more = await bob.call(
      "GET",
      `${room()}/messages?dir=b&limit=1&from=${enc(ctx.body.start)}&filter=${enc(JSON.stringify({ types: ["m.room.message"] }))}`,
    );
    assert.equal(more.body.chunk[0].content.body, "msg 7");
  });

  test("members with at, membership and not_membership", async () => {
    const carol = await srv.user("carol");
    const before = await alice.call("GET", `${room()}/messages?dir=b&limit=1`);
    await carol.call("POST", `${room()}/join`, {});
    const now = await alice.call("GET", `${room()}/members`);
    assert.equal(now.status, 200);
    assertSpec("rooms.yaml", "/rooms/{roomId}/members", "GET", 200, now.body);
    assert.ok(now.body.chunk.some((e: any) => e.state_key === carol.userId));
    const then = await alice.call("GET", `${room()}/members?at=${enc(before.body.start)}`);
    assert.ok(!then.body.chunk.some((e: any) => e.state_key === carol.userId));
    assert.ok(then.body.chunk.some((e: any) => e.state_key === bob.userId));
    await carol.call("POST", `${room()}/leave`, {});
    const joined = await alice.call("GET", `${room()}/members?membership=join`);
    assert.ok(!joined.body.chunk.some((e: any) => e.state_key === carol.userId));
    const notJoined = await alice.call("GET", `${room()}/members?not_membership=join`);
    assert.deepEqual(
      notJoined.body.chunk.map((e: any) => e.state_key),
      [carol.userId],
    );
    const state = await alice.call("GET", `${room()}/state`);
    assertSpec("rooms.yaml", "/rooms/{roomId}/state", "GET", 200, state.body);
  });
});
