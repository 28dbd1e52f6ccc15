import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { assertSpec } from "../../test/spec-schema.ts";
import { enc, startTestServer, type TestServer, type TestUser, V3 } from "./room-testkit.ts";

let srv: TestServer;
let alice: TestUser;
let bob: TestUser;

before(async () => {
  srv = await startTestServer();
  alice = await srv.user("alice", { displayname: "Alice" });
  bob = await srv.user("bob", { displayname: "Bob" });
});
after(() => srv.close());

async function sync(u: TestUser, params: Record<string, string> = {}, checkSpec = true): Promise<any> {
  const q = new URLSearchParams(params).toString();
  const r = await u.call("GET", `${V3}/sync${q ? `?${q}` : ""}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  // A filter with event_fields asks for partial events, which the schema's required keys cannot describe.
  if (checkSpec) assertSpec("sync.yaml", "/sync", "GET", 200, r.body);
  return r.body;
}

async function room(owner: TestUser, body: Record<string, unknown> = {}): Promise<string> {
  const r = await owner.call("POST", `${V3}/createRoom`, body);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.room_id;
}

let txn = 0;
async function send(u: TestUser, roomId: string, text: string, extra: Record<string, unknown> = {}): Promise<string> {
  const r = await u.call("PUT", `${V3}/rooms/${enc(roomId)}/send/m.room.message/t${++txn}`, {
    msgtype: "m.text",
    body: text,
    ...extra,
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.event_id;
}

async function join(u: TestUser, roomId: string): Promise<void> {
  const r = await u.call("POST", `${V3}/join/${enc(roomId)}`, {});
  assert.equal(r.status, 200, JSON.stringify(r.body));
}

const bodies = (evs: any[]) => evs.filter((e) => e.type === "m.room.message").map((e) => e.content.body);

describe("/sync", () => {
  test("initial sync has the room with state, timeline and summary; incremental sync has only what is new", async () => {
    const roomId = await room(alice, { name: "First" });
    await send(alice, roomId, "one");
    const s0 = await sync(alice);
    const r0 = s0.rooms.join[roomId];
    assert.ok(r0, "room in join");
    assert.deepEqual(bodies(r0.timeline.events), ["one"]);
    assert.equal(r0.timeline.events.at(-1).room_id, undefined, "ClientEventWithoutRoomID");
    const stateTypes = [...r0.state.events, ...r0.timeline.events].map((e: any) => e.type);
    for (const t of ["m.room.create", "m.room.power_levels", "m.room.name"]) assert.ok(stateTypes.includes(t), t);
    assert.equal(r0.summary["m.joined_member_count"], 1);
    assert.deepEqual(r0.unread_notifications, { notification_count: 0, highlight_count: 0 });
    assert.match(s0.next_batch, /^s\d+_\d+$/);
    assert.ok(s0.account_data.events.some((e: any) => e.type === "m.push_rules"));

    await send(alice, roomId, "two");
    const s1 = await sync(alice, { since: s0.next_batch });
    assert.deepEqual(bodies(s1.rooms.join[roomId].timeline.events), ["two"]);
    assert.deepEqual(s1.rooms.join[roomId].state.events, []);
    assert.equal(s1.rooms.join[roomId].timeline.limited, false);

    const s2 = await sync(alice, { since: s1.next_batch });
    assert.deepEqual(s2.rooms.join, {}, "nothing new");
  });

  test("long-poll wakes when another user sends, and times out empty with a fresh token", async () => {
    const roomId = await room(alice, { preset: "public_chat" });
    await join(bob, roomId);
    const s0 = await sync(bob);
    const empty = await sync(bob, { since: s0.next_batch, timeout: "50" });
    assert.deepEqual(empty.rooms.join, {});
    assert.match(empty.next_batch, /^s\d+_\d+$/);
    const polling = sync(bob, { since: empty.next_batch, timeout: "20000" });
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(srv.hs.metrics.activeSyncs >= 1, "sync is parked");
    await send(alice, roomId, "wake up");
    const woke = await polling;
    assert.deepEqual(bodies(woke.rooms.join[roomId].timeline.events), ["wake up"]);
  });

  test("a client going away ends the long-poll", async () => {
    const s0 = await sync(bob);
    const ac = new AbortController();
    const before = srv.hs.metrics.activeSyncs;
    const p = fetch(`${srv.url}${V3}/sync?since=${s0.next_batch}&timeout=20000`, {
      headers: { Authorization: `Bearer ${bob.token}` },
      signal: ac.signal,
    }).catch(() => null);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(srv.hs.metrics.activeSyncs, before + 1);
    ac.abort();
    await p;
    for (let i = 0; i < 50 && srv.hs.metrics.activeSyncs > before; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(srv.hs.metrics.activeSyncs, before);
  });

  test("limited timeline with prev_batch that /messages continues from", async () => {
    const roomId = await room(alice);
    const s0 = await sync(alice);
    for (let i = 0; i < 15; i++) await send(alice, roomId, `m${i}`);
    const s1 = await sync(alice, {
      since: s0.next_batch,
      filter: JSON.stringify({ room: { timeline: { limit: 5 } } }),
    });
    const tl = s1.rooms.join[roomId].timeline;
    assert.equal(tl.limited, true);
    assert.deepEqual(bodies(tl.events), ["m10", "m11", "m12", "m13", "m14"]);
    const page = await alice.call("GET", `${V3}/rooms/${enc(roomId)}/messages?dir=b&limit=20&from=${tl.prev_batch}`);
    assert.equal(page.status, 200, JSON.stringify(page.body));
    const older = bodies(page.body.chunk);
    assert.deepEqual(older.slice(0, 10), ["m9", "m8", "m7", "m6", "m5", "m4", "m3", "m2", "m1", "m0"]);
    // Default limit is 10.
    const init = await sync(alice);
    assert.equal(init.rooms.join[roomId].timeline.events.length, 10);
    assert.equal(init.rooms.join[roomId].timeline.limited, true);
  });

  test("limited incremental sync carries the state changed in the gap", async () => {
    const roomId = await room(alice, { name: "Before" });
    const s0 = await sync(alice);
    await alice.call("PUT", `${V3}/rooms/${enc(roomId)}/state/m.room.name/`, { name: "After" });
    for (let i = 0; i < 5; i++) await send(alice, roomId, `x${i}`);
    const s1 = await sync(alice, {
      since: s0.next_batch,
      filter: JSON.stringify({ room: { timeline: { limit: 2 } } }),
    });
    const r = s1.rooms.join[roomId];
    assert.equal(r.timeline.limited, true);
    assert.deepEqual(
      r.state.events.map((e: any) => [e.type, e.content.name]),
      [["m.room.name", "After"]],
    );
  });

  test("filters: stored filter, not_types, rooms/not_rooms, event_fields; bad filters are 400", async () => {
    const r1 = await room(alice);
    const r2 = await room(alice);
    await send(alice, r1, "in r1");
    await send(alice, r2, "in r2");
    const f = await alice.call("POST", `${V3}/user/${enc(alice.userId)}/filter`, {
      room: { rooms: [r1, r2], not_rooms: [r2], timeline: { not_types: ["m.room.member", "m.room.power*"] } },
      event_fields: ["type", "content.body", "event_id"],
    });
    assert.equal(f.status, 200);
    assertSpec("filter.yaml", "/user/{userId}/filter", "POST", 200, f.body);
    const got = await alice.call("GET", `${V3}/user/${enc(alice.userId)}/filter/${f.body.filter_id}`);
    assert.deepEqual(got.body.room.not_rooms, [r2]);
    assert.equal(
      (await bob.call("GET", `${V3}/user/${enc(alice.userId)}/filter/${f.body.filter_id}`)).body.errcode,
      "M_FORBIDDEN",
    );
    assert.equal((await bob.call("POST", `${V3}/user/${enc(alice.userId)}/filter`, {})).status, 403);
    assert.equal((await alice.call("GET", `${V3}/user/${enc(alice.userId)}/filter/99999`)).status, 404);
    assert.equal(
      (await alice.call("POST", `${V3}/user/${enc(alice.userId)}/filter`, { room: { timeline: { limit: "x" } } })).body
        .errcode,
      "M_BAD_JSON",
    );

    const s = await sync(alice, { filter: f.body.filter_id }, false);
    assert.deepEqual(Object.keys(s.rooms.join), [r1]);
    const evs = s.rooms.join[r1].timeline.events;
    assert.ok(evs.every((e: any) => e.type !== "m.room.member" && e.type !== "m.room.power_levels"));
    const msg = evs.find((e: any) => e.type === "m.room.message");
    assert.deepEqual(Object.keys(msg).sort(), ["content", "event_id", "type"]);

    assert.equal((await alice.call("GET", `${V3}/sync?filter=${enc("{bad")}`)).status, 400);
    assert.equal((await alice.call("GET", `${V3}/sync?filter=424242`)).status, 400);
    assert.equal((await alice.call("GET", `${V3}/sync?since=garbage`)).body.errcode, "M_INVALID_PARAM");
    assert.equal((await alice.call("GET", `${V3}/sync?timeout=abc`)).status, 400);
  });

  test("lazy-loading members: only senders' members, summary with heroes, no redundant resend", async () => {
    const roomId = await room(alice, { preset: "public_chat" });
    const users: TestUser[] = [];
    for (let i = 0; i < 4; i++) {
      const u = await srv.user(`lazy${i}`);
      await join(u, roomId);
      users.push(u);
    }
    await send(users[0], roomId, "hello from 0");
    const lazy = JSON.stringify({ room: { state: { lazy_load_members: true }, timeline: { limit: 1 } } });
    const s0 = await sync(alice, { filter: lazy });
    const r = s0.rooms.join[roomId];
    const members = r.state.events
      .filter((e: any) => e.type === "m.room.member")
      .map((e: any) => e.state_key)
      .sort();
    // sender of the timeline + own membership + heroes (first 5 other members)
    assert.ok(members.includes(users[0].userId) && members.includes(alice.userId));
    assert.equal(r.summary["m.joined_member_count"], 5);
    assert.equal(r.summary["m.invited_member_count"], 0);
    assert.equal(r.summary["m.heroes"].length, 4);
    assert.ok(!r.summary["m.heroes"].includes(alice.userId));

    await send(users[0], roomId, "again from 0");
    await send(users[1], roomId, "from 1");
    const s1 = await sync(alice, {
      filter: JSON.stringify({ room: { state: { lazy_load_members: true }, timeline: { limit: 10 } } }),
      since: s0.next_batch,
    });
    const m1 = s1.rooms.join[roomId].state.events
      .filter((e: any) => e.type === "m.room.member")
      .map((e: any) => e.state_key);
    assert.ok(!m1.includes(users[0].userId), "user 0's member event was already sent");
    assert.ok(s1.rooms.join[roomId].summary, "summary always present when lazy loading");

    const redundant = JSON.stringify({
      room: { state: { lazy_load_members: true, include_redundant_members: true }, timeline: { limit: 10 } },
    });
    const s2 = await sync(alice, { filter: redundant, since: s0.next_batch });
    const m2 = s2.rooms.join[roomId].state.events
      .filter((e: any) => e.type === "m.room.member")
      .map((e: any) => e.state_key);
    assert.ok(m2.includes(users[0].userId), "include_redundant_members resends");
  });

  test("invite, join and leave sections; forgotten rooms are omitted", async () => {
    const roomId = await room(alice, { name: "Invite only" });
    const s0 = await sync(bob);
    await alice.call("POST", `${V3}/rooms/${enc(roomId)}/invite`, { user_id: bob.userId });
    const s1 = await sync(bob, { since: s0.next_batch });
    const inv = s1.rooms.invite[roomId];
    assert.ok(inv, "invite section");
    const types = inv.invite_state.events.map((e: any) => e.type);
    assert.ok(types.includes("m.room.create") && types.includes("m.room.name"));
    const me = inv.invite_state.events.find((e: any) => e.type === "m.room.member" && e.state_key === bob.userId);
    assert.equal(me.content.membership, "invite");
    assert.equal(me.event_id, undefined, "stripped state");

    await join(bob, roomId);
    const s2 = await sync(bob, { since: s1.next_batch });
    assert.ok(s2.rooms.join[roomId], "newly joined room");
    // A newly joined room is synced from its beginning (shared history): the create event is in the state at the
    // start of the timeline, or in the timeline itself when the whole history fits.
    const joined = s2.rooms.join[roomId];
    assert.ok(
      [...joined.state.events, ...joined.timeline.events].some((e: any) => e.type === "m.room.create"),
      "full state on join",
    );
    assert.equal(s2.rooms.invite[roomId], undefined);

    await send(alice, roomId, "before leave");
    assert.equal((await bob.call("POST", `${V3}/rooms/${enc(roomId)}/leave`, {})).status, 200);
    await send(alice, roomId, "after leave");
    const s3 = await sync(bob, { since: s2.next_batch });
    const left = s3.rooms.leave[roomId];
    assert.ok(left, "leave section");
    assert.deepEqual(bodies(left.timeline.events), ["before leave"]);
    assert.equal(left.timeline.events.at(-1).content.membership, "leave");
    assert.equal(s3.rooms.join[roomId], undefined);

    assert.equal((await sync(bob)).rooms.leave[roomId], undefined, "initial sync: no left rooms without include_leave");
    const withLeave = JSON.stringify({ room: { include_leave: true } });
    assert.ok((await sync(bob, { filter: withLeave })).rooms.leave[roomId], "include_leave");
    assert.equal((await bob.call("POST", `${V3}/rooms/${enc(roomId)}/forget`, {})).status, 200);
    assert.equal((await sync(bob, { filter: withLeave })).rooms.leave[roomId], undefined, "forgotten");
  });

  test("a rejected invite shows only the leave, not the room's timeline", async () => {
    const roomId = await room(alice, { name: "Secret" });
    await send(alice, roomId, "private talk");
    await alice.call("POST", `${V3}/rooms/${enc(roomId)}/invite`, { user_id: bob.userId });
    const s0 = await sync(bob);
    assert.ok(s0.rooms.invite[roomId]);
    assert.equal((await bob.call("POST", `${V3}/rooms/${enc(roomId)}/leave`, {})).status, 200);
    const s1 = await sync(bob, { since: s0.next_batch });
    const left = s1.rooms.leave[roomId];
    assert.ok(left);
    assert.deepEqual(bodies(left.timeline.events), []);
    assert.deepEqual(
      left.timeline.events.map((e: any) => e.content.membership),
      ["leave"],
    );
  });
});
