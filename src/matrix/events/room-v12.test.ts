/**
 * Room version 12 (spec rooms/v12; MSC4289, MSC4291, MSC4297): room IDs as the create event's hash, creators with
 * an infinite power level, the v12 authorization rules, and state resolution v2.1 against v2.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type AuthEvent, authTypesFor, checkAuth, type StateKey, stateKey } from "./auth.ts";
import { EventGraph, type StateResEvent } from "./auth-chain.ts";
import { eventIdFor } from "./hashing.ts";
import { createEventIdOfRoom, isHashedRoomId, isValidRoomId, roomIdOfCreateEvent, serverNameOf } from "./ids.ts";
import { powerLevelOf, roomCreatorsOf } from "./power-levels.ts";
import { resolveStateV2, reverseTopologicalPowerOrder, senderPowerLevel } from "./state-res.ts";
import { createEventSpec, joinRules, member, powerLevels, RoomDag, topic, V12_CREATE_ID } from "./testing.ts";

const ALICE = "@alice:example.com";
const BOB = "@bob:example.com";
const CAROL = "@carol:other.example";
const DAVE = "@dave:example.com";

test("v12 room ID: '!' + the URL-safe unpadded base64 reference hash of the create event, no server part", () => {
  const create = {
    type: "m.room.create",
    state_key: "",
    sender: ALICE,
    content: { room_version: "12", additional_creators: [BOB] },
    origin_server_ts: 1_700_000_000_000,
    depth: 1,
    prev_events: [],
    auth_events: [],
    hashes: { sha256: "x" },
  };
  const eventId = eventIdFor(create, "12");
  const roomId = roomIdOfCreateEvent(eventId);
  assert.match(roomId, /^![A-Za-z0-9_-]{43}$/);
  assert.equal(roomId.slice(1), eventId.slice(1));
  assert.ok(isValidRoomId(roomId) && isHashedRoomId(roomId));
  assert.equal(serverNameOf(roomId), null);
  assert.equal(createEventIdOfRoom(roomId), eventId);
  // Older room IDs are still valid and imply no create event.
  assert.ok(isValidRoomId("!abc:example.com") && !isHashedRoomId("!abc:example.com"));
  assert.equal(createEventIdOfRoom("!abc:example.com"), undefined);
  assert.ok(!isValidRoomId("!short") && !isValidRoomId(`!${"a".repeat(42)}+`));
  // The content counts: another additional creator is another room.
  const other = eventIdFor({ ...create, content: { room_version: "12" } }, "12");
  assert.notEqual(other, eventId);
});

test("v12 auth events selection leaves the create event out; the rules still read it", () => {
  const msg = { type: "m.room.message", sender: ALICE, content: {} };
  assert.deepEqual(authTypesFor(msg, "11")[0], ["m.room.create", ""]);
  assert.ok(!authTypesFor(msg, "12").some(([t]) => t === "m.room.create"));
  assert.ok(authTypesFor(msg).some(([t]) => t === "m.room.create"));
});

// A v12 room's auth state: create by alice with bob as additional creator, alice joined, power levels, public.
const ROOM = roomIdOfCreateEvent(V12_CREATE_ID);
let n = 0;
function ev(type: string, sender: string, content: Record<string, any>, state_key?: string): AuthEvent {
  n += 1;
  return {
    event_id: `$v12e${n}`,
    room_id: ROOM,
    type,
    sender,
    content,
    ...(state_key === undefined ? {} : { state_key }),
  };
}
const CREATE: AuthEvent = {
  event_id: V12_CREATE_ID,
  room_id: ROOM,
  type: "m.room.create",
  sender: ALICE,
  state_key: "",
  content: { room_version: "12", additional_creators: [BOB] },
};
function room(pl: Record<string, any> = { users: { [DAVE]: 100 } }): Map<StateKey, AuthEvent> {
  const events = [
    CREATE,
    ev("m.room.member", ALICE, { membership: "join" }, ALICE),
    ev("m.room.member", BOB, { membership: "join" }, BOB),
    ev("m.room.member", DAVE, { membership: "join" }, DAVE),
    ev("m.room.power_levels", ALICE, pl, ""),
    ev("m.room.join_rules", ALICE, { join_rule: "public" }, ""),
  ];
  return new Map(events.map((e) => [stateKey(e.type, e.state_key ?? ""), e]));
}

test("v12 creators: the sender and additional_creators, infinitely powerful whatever power levels say", () => {
  assert.deepEqual(roomCreatorsOf(CREATE), [ALICE, BOB]);
  assert.equal(powerLevelOf(ALICE, { users: {} }, CREATE), Infinity);
  assert.equal(powerLevelOf(BOB, { users_default: 0 }, CREATE), Infinity);
  assert.equal(powerLevelOf(DAVE, { users: { [DAVE]: 9007199254740991 } }, CREATE), 9007199254740991);
  // v11: only the sender, and only without power levels (100).
  const v11 = { ...CREATE, content: { room_version: "11", additional_creators: [BOB] } };
  assert.deepEqual(roomCreatorsOf(v11), [ALICE]);
  assert.equal(powerLevelOf(BOB, undefined, v11), 0);
  assert.equal(powerLevelOf(ALICE, { users: {} }, v11), 0);
});

test("v12 create event rules: no room_id, additional_creators are user IDs", () => {
  const create = (content: Record<string, any>, room_id?: string) =>
    ({ event_id: V12_CREATE_ID, type: "m.room.create", state_key: "", sender: ALICE, content, room_id }) as any;
  assert.equal(checkAuth(create({ room_version: "12" }), new Map(), "12"), null);
  assert.equal(checkAuth(create({ room_version: "12", additional_creators: [BOB, CAROL] }), new Map(), "12"), null);
  // A stored copy carries the room ID the create event implies: the same as none.
  assert.equal(checkAuth(create({ room_version: "12" }, ROOM), new Map(), "12"), null);
  assert.match(checkAuth(create({ room_version: "12" }, "!x:example.com"), new Map(), "12") ?? "", /no room_id/);
  assert.match(
    checkAuth(create({ room_version: "12", additional_creators: "@bob:example.com" }), new Map(), "12") ?? "",
    /additional_creators/,
  );
  assert.match(
    checkAuth(create({ room_version: "12", additional_creators: ["bob"] }), new Map(), "12") ?? "",
    /additional_creators/,
  );
  // v11 does not look at additional_creators, and still wants the room ID's domain.
  const v11 = { ...create({ room_version: "11", additional_creators: 7 }), room_id: "!r:example.com" };
  assert.equal(checkAuth(v11, new Map(), "11"), null);
});

test("v12 rule 2: the room ID must be the create event's", () => {
  const msg = ev("m.room.message", DAVE, { body: "hi" });
  assert.equal(checkAuth(msg, room(), "12"), null);
  const elsewhere = { ...msg, room_id: roomIdOfCreateEvent(`$${"X".repeat(43)}`) };
  const state = new Map(
    [...room()].map(([k, e]) => [k, k === stateKey("m.room.create", "") ? e : { ...e, room_id: elsewhere.room_id }]),
  );
  assert.match(checkAuth(elsewhere, state, "12") ?? "", /create event/);
});

test("v12 power levels: creators may not be listed, cannot be kicked or banned, and outrank any level", () => {
  const state = room();
  const pl = (sender: string, users: Record<string, number>) => ev("m.room.power_levels", sender, { users }, "");
  assert.match(checkAuth(pl(ALICE, { [ALICE]: 100 }), state, "12") ?? "", /creator .*alice/);
  assert.match(checkAuth(pl(ALICE, { [BOB]: 100 }), state, "12") ?? "", /creator .*bob/);
  assert.equal(checkAuth(pl(ALICE, { [DAVE]: 50 }), state, "12"), null, "a creator demotes a 100");
  assert.equal(checkAuth(pl(BOB, { [DAVE]: 9007199254740991 }), state, "12"), null, "an additional creator too");
  assert.equal(checkAuth(pl(DAVE, { [DAVE]: 100, [CAROL]: 50 }), state, "12"), null);
  assert.match(checkAuth(pl(DAVE, { [DAVE]: 100, [ALICE]: 0 }), state, "12") ?? "", /creator/);
  const kick = (sender: string, target: string, membership = "leave") =>
    ev("m.room.member", sender, { membership }, target);
  assert.match(checkAuth(kick(DAVE, ALICE), state, "12") ?? "", /insufficient/, "a 100 cannot kick a creator");
  assert.match(checkAuth(kick(DAVE, BOB, "ban"), state, "12") ?? "", /insufficient/);
  assert.match(checkAuth(kick(BOB, ALICE), state, "12") ?? "", /insufficient/, "nor can another creator");
  assert.equal(checkAuth(kick(ALICE, DAVE, "ban"), state, "12"), null);
  // An event needing more than any integer level: only creators.
  const high = room({ users: { [DAVE]: 100 }, events: { "m.room.tombstone": 150 } });
  assert.equal(checkAuth(ev("m.room.tombstone", BOB, {}, ""), high, "12"), null);
  assert.match(checkAuth(ev("m.room.tombstone", DAVE, {}, ""), high, "12") ?? "", /needs power level 150/);
  // v11 with the same content lists the creator freely.
  const v11create = { ...CREATE, content: { room_version: "11" } };
  const v11 = new Map(state);
  v11.set(stateKey("m.room.create", ""), { ...v11create, room_id: ROOM });
  assert.equal(checkAuth({ ...pl(DAVE, { [DAVE]: 100, [ALICE]: 0 }), room_id: ROOM }, v11, "11"), null);
});

test("v12 RoomDag: events cite no create event, creators rule without being in power levels", async () => {
  const dag = new RoomDag("12");
  assert.equal(dag.roomId, roomIdOfCreateEvent(V12_CREATE_ID));
  await dag.add(createEventSpec("12", ALICE, { additional_creators: [BOB] }), []);
  await dag.add(member("$ja", ALICE, "join"), [V12_CREATE_ID]);
  const pl = await dag.add(powerLevels("$pl", ALICE, { users: {} }), ["$ja"]);
  assert.ok(!pl.rejected && !pl.auth_events.includes(V12_CREATE_ID));
  await dag.add(joinRules("$jr", ALICE, "public"), ["$pl"]);
  const jb = await dag.add(member("$jb", BOB, "join"), ["$jr"]);
  assert.ok(!jb.rejected);
  const t = await dag.add(topic("$t", BOB), ["$jb"]);
  assert.ok(!t.rejected, "bob, an additional creator, sends state with no level in power levels");
  const listed = await dag.add(powerLevels("$pl2", BOB, { users: { [ALICE]: 50 } }), ["$t"]);
  assert.ok(listed.rejected, "power levels listing a creator are rejected");
});

/**
 * A v2 "state reset" that v2.1 avoids: bob joins a public room, then alice makes it invite-only. One state has
 * both; another (a server whose state lost bob's join, say by an earlier reset) has the invite-only rules but not
 * bob. The public join rules are in both sides' auth chains (carol joined under them), so only bob's join is
 * conflicted. v2 checks it against the unconflicted, newer join rules and drops him again; v2.1 starts from an
 * empty state, checks the join against its own auth events (public) and keeps him.
 */
async function joinRaceRoom(version: string) {
  const dag = new RoomDag(version);
  const create = createEventSpec(version, ALICE);
  await dag.add(create, []);
  await dag.add(member("$ja", ALICE, "join"), [create.id]);
  await dag.add(powerLevels("$pl", ALICE, version === "12" ? { users: {} } : { users: { [ALICE]: 100 } }), ["$ja"]);
  await dag.add(joinRules("$public", ALICE, "public"), ["$pl"]);
  await dag.add(member("$jc", CAROL, "join"), ["$public"]);
  await dag.add(member("$jb", BOB, "join"), ["$jc"]);
  await dag.add(joinRules("$invite", ALICE, "invite"), ["$jb"]);
  const full = dag.stateAfter.get("$invite")!;
  const lost = new Map(full);
  lost.delete(stateKey("m.room.member", BOB));
  return { dag, sets: [full, lost] };
}

test("state resolution v2 and v2.1 disagree on a join racing a join rules change", async () => {
  const bob = stateKey("m.room.member", BOB);
  for (const [version, want] of [
    ["11", undefined],
    ["12", "$jb"],
  ] as const) {
    const { dag, sets } = await joinRaceRoom(version);
    const resolved = await resolveStateV2(version, sets, dag.graph);
    assert.equal(resolved.get(bob), want, `v${version}`);
    assert.equal(resolved.get(stateKey("m.room.join_rules", "")), "$invite");
    assert.equal(resolved.get(stateKey("m.room.member", CAROL)), "$jc");
  }
});

test("conflicted state subgraph: events on auth paths between conflicted events, ends included", () => {
  // a <- b <- c <- d and a <- x; conflicted {d, b}: the subgraph is b, c, d (a is below b, x is off any path).
  const graph = new EventGraph(() => undefined);
  const e = (id: string, auth: string[]): StateResEvent => ({
    event_id: id,
    room_id: ROOM,
    type: "t",
    state_key: id,
    sender: ALICE,
    content: {},
    origin_server_ts: 0,
    auth_events: auth,
    prev_events: [],
    depth: 1,
  });
  for (const x of [e("$a", []), e("$b", ["$a"]), e("$c", ["$b"]), e("$d", ["$c"]), e("$x", ["$a"])]) graph.add(x);
  assert.deepEqual([...graph.conflictedSubgraph(["$d", "$b"])].sort(), ["$b", "$c", "$d"]);
  assert.deepEqual([...graph.conflictedSubgraph(["$d", "$x"])].sort(), ["$d", "$x"]);
  assert.deepEqual([...graph.conflictedSubgraph(["$d", "$x", "$a"])].sort(), ["$a", "$b", "$c", "$d", "$x"]);
});

test("v2.1 resolves a forked topic in a v12 room (creator and a 50, no create event cited)", async () => {
  // alice (creator) raises dave to 50, then dave and alice each set the topic on a fork.
  const dag = new RoomDag("12");
  await dag.add(createEventSpec("12", ALICE), []);
  await dag.add(member("$ja", ALICE, "join"), [V12_CREATE_ID]);
  await dag.add(powerLevels("$pl", ALICE, { users: {} }), ["$ja"]);
  await dag.add(joinRules("$jr", ALICE, "public"), ["$pl"]);
  await dag.add(member("$jd", DAVE, "join"), ["$jr"]);
  await dag.add(topic("$t1", ALICE), ["$jd"]);
  await dag.add(powerLevels("$pl2", ALICE, { users: { [DAVE]: 50 } }), ["$t1"]);
  const t2 = await dag.add(topic("$t2", DAVE), ["$pl2"]);
  assert.ok(!t2.rejected);
  await dag.add(topic("$t3", ALICE), ["$pl2"]);
  const resolved = await resolveStateV2("12", [dag.stateAfter.get("$t2")!, dag.stateAfter.get("$t3")!], dag.graph);
  // Same power levels on both sides: unconflicted, and the later topic by mainline order wins.
  assert.equal(resolved.get(stateKey("m.room.power_levels", "")), "$pl2");
  assert.equal(resolved.get(stateKey("m.room.topic", "")), "$t3");
});

test("v12 reverse topological power ordering: creators (from the room ID's create event) sort first", async () => {
  const dag = new RoomDag("12");
  await dag.add(createEventSpec("12", ALICE, { additional_creators: [BOB] }), []);
  await dag.add(member("$ja", ALICE, "join"), [V12_CREATE_ID]);
  await dag.add(powerLevels("$pl", ALICE, { users: { [DAVE]: 100 } }), ["$ja"]);
  await dag.add(joinRules("$jr", ALICE, "public"), ["$pl"]);
  await dag.add(member("$jb", BOB, "join"), ["$jr"]);
  await dag.add(member("$jd", DAVE, "join"), ["$jb"]);
  // Two concurrent join rules changes; dave's is older, bob's (a creator, cited in no power levels) sorts first.
  const d = await dag.add(joinRules("$d", DAVE, "invite"), ["$jd"], 100);
  const b = await dag.add(joinRules("$b", BOB, "knock"), ["$jd"], 200);
  assert.equal(senderPowerLevel("12", dag.graph, b), Infinity);
  assert.equal(senderPowerLevel("12", dag.graph, d), 100);
  assert.deepEqual(reverseTopologicalPowerOrder("12", dag.graph, new Set(["$d", "$b"])), ["$b", "$d"]);
  // v2 ordering by the same events read as v11: no creator privilege, both at their cited level (bob: 0).
  assert.equal(senderPowerLevel("11", dag.graph, b), 0);
});
