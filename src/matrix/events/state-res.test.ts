import assert from "node:assert/strict";
import { test } from "node:test";
import { type StateKey, stateKey } from "./auth.ts";
import { EventGraph, StateResError, type StateResEvent } from "./auth-chain.ts";
import {
  isPowerEvent,
  iterativeAuthChecks,
  mainlineOrder,
  resolveStateV2,
  reverseTopologicalPowerOrder,
  senderPowerLevel,
  separateStateSets,
} from "./state-res.ts";
import { createEventSpec, type EventSpec, joinRules, member, powerLevels, RoomDag, topic } from "./testing.ts";

const ALICE = "@alice:example.com";
const BOB = "@bob:example.com";
const CHARLIE = "@charlie:example.com";
const EVELYN = "@evelyn:example.com";
const ZARA = "@zara:example.com";

// Scenarios modelled on Synapse's tests/state/test_v2.py: a room opened by alice (create, join, power levels
// with alice at 100, public join rules), bob, charlie and zara joined, then START; each scenario adds events and
// prev_events chains ("A, B, C" = A's prev_events include B, B's include C) ending at END. Events are added in
// the lexicographically smallest topological order of node names, so origin_server_ts follows that order.
function initialEvents(version: string): EventSpec[] {
  return [
    { ...createEventSpec(version, ALICE), id: "CREATE" },
    member("IMA", ALICE, "join"),
    powerLevels("IPOWER", ALICE, { users: { [ALICE]: 100 } }),
    joinRules("IJR", ALICE, "public"),
    member("IMB", BOB, "join"),
    member("IMC", CHARLIE, "join"),
    member("IMZ", ZARA, "join"),
    { id: "START", type: "m.room.message", sender: ZARA, content: {} },
    { id: "END", type: "m.room.message", sender: ZARA, content: {} },
  ];
}
const INITIAL_CHAIN = ["START", "IMZ", "IMC", "IMB", "IJR", "IPOWER", "IMA", "CREATE"];

async function stateAtEnd(version: string, events: EventSpec[], chains: string[][]) {
  const specs = new Map<string, EventSpec>();
  const prevs = new Map<string, Set<string>>();
  for (const e of [...initialEvents(version), ...events]) {
    specs.set(e.id, e);
    prevs.set(e.id, new Set());
  }
  for (const chain of [INITIAL_CHAIN, ...chains]) {
    for (let i = 0; i + 1 < chain.length; i += 1) prevs.get(chain[i])!.add(chain[i + 1]);
  }
  const dag = new RoomDag(version);
  const done = new Set<string>();
  while (done.size < specs.size) {
    const ready = [...specs.keys()].filter((id) => !done.has(id) && [...prevs.get(id)!].every((p) => done.has(p)));
    const next = ready.sort()[0];
    assert.ok(next, "the scenario's prev_events form a cycle");
    await dag.add(specs.get(next)!, [...prevs.get(next)!]);
    done.add(next);
  }
  return dag;
}

/** The state at END, keeping the keys that changed since START or that `expected` names. */
async function check(events: EventSpec[], chains: string[][], expected: string[]) {
  for (const version of ["10", "11"]) {
    const dag = await stateAtEnd(version, events, chains);
    const keyOf = (id: string) => stateKey(dag.events.get(id)!.type, dag.events.get(id)!.state_key!);
    const want = new Map(expected.map((id) => [keyOf(id), id]));
    const start = dag.stateAfter.get("START")!;
    const got = new Map([...dag.stateAfter.get("END")!].filter(([k, v]) => want.has(k) || start.get(k) !== v));
    assert.deepEqual(got, want, `v${version}`);
  }
}

test("ban vs power levels change: the ban holds, bob's power levels event fails against it", async () => {
  await check(
    [
      powerLevels("PA", ALICE, { users: { [ALICE]: 100, [BOB]: 50 } }),
      member("MA", ALICE, "join"),
      member("MB", BOB, "ban", ALICE),
      powerLevels("PB", BOB, { users: { [ALICE]: 100, [BOB]: 50 } }),
    ],
    [
      ["END", "MB", "MA", "PA", "START"],
      ["END", "PB", "PA"],
    ],
    ["PA", "MA", "MB"],
  );
});

test("join rule evasion: a join on a fork does not survive private join rules on the other", async () => {
  await check(
    [
      // As in Synapse's test, the content says `join_rules` (sic), so the rule defaults to invite.
      { id: "JR", type: "m.room.join_rules", sender: ALICE, state_key: "", content: { join_rules: "private" } },
      member("ME", EVELYN, "join"),
    ],
    [
      ["END", "JR", "START"],
      ["END", "ME", "START"],
    ],
    ["JR"],
  );
});

test("offtopic power levels: charlie's own demotion wins over the older fork", async () => {
  await check(
    [
      powerLevels("PA", ALICE, { users: { [ALICE]: 100, [BOB]: 50 } }),
      powerLevels("PB", BOB, { users: { [ALICE]: 100, [BOB]: 50, [CHARLIE]: 50 } }),
      powerLevels("PC", CHARLIE, { users: { [ALICE]: 100, [BOB]: 50, [CHARLIE]: 0 } }),
    ],
    [
      ["END", "PC", "PB", "PA", "START"],
      ["END", "PA"],
    ],
    ["PC"],
  );
});

test("topic basic: bob's topic falls with his power", async () => {
  await check(
    [
      topic("T1", ALICE),
      powerLevels("PA1", ALICE, { users: { [ALICE]: 100, [BOB]: 50 } }),
      topic("T2", ALICE),
      powerLevels("PA2", ALICE, { users: { [ALICE]: 100, [BOB]: 0 } }),
      powerLevels("PB", BOB, { users: { [ALICE]: 100, [BOB]: 50 } }),
      topic("T3", BOB),
    ],
    [
      ["END", "PA2", "T2", "PA1", "T1", "START"],
      ["END", "T3", "PB", "PA1"],
    ],
    ["PA2", "T2"],
  );
});

test("topic reset: a ban resets the topic the banned user set to the other fork's", async () => {
  await check(
    [
      topic("T1", ALICE),
      powerLevels("PA", ALICE, { users: { [ALICE]: 100, [BOB]: 50 } }),
      topic("T2", BOB),
      member("MB", BOB, "ban", ALICE),
    ],
    [
      ["END", "MB", "T2", "PA", "T1", "START"],
      ["END", "T1"],
    ],
    ["T1", "MB", "PA"],
  );
});

test("topic: a later topic on the surviving mainline wins", async () => {
  await check(
    [
      topic("T1", ALICE),
      powerLevels("PA1", ALICE, { users: { [ALICE]: 100, [BOB]: 50 } }),
      topic("T2", ALICE),
      powerLevels("PA2", ALICE, { users: { [ALICE]: 100, [BOB]: 0 } }),
      powerLevels("PB", BOB, { users: { [ALICE]: 100, [BOB]: 50 } }),
      topic("T3", BOB),
      { id: "MZ1", type: "m.room.message", sender: ZARA, content: {} },
      topic("T4", ALICE),
    ],
    [
      ["END", "T4", "MZ1", "PA2", "T2", "PA1", "T1", "START"],
      ["END", "MZ1", "T3", "PB", "PA1"],
    ],
    ["T4", "PA2"],
  );
});

test("mainline sort: the topic built on the newest mainline power levels wins, not the latest sent", async () => {
  await check(
    [
      topic("T1", ALICE),
      powerLevels("PA1", ALICE, { users: { [ALICE]: 100, [BOB]: 50 } }),
      topic("T2", ALICE),
      powerLevels("PA2", ALICE, { users: { [ALICE]: 100, [BOB]: 50 }, events: { "m.room.power_levels": 100 } }),
      powerLevels("PB", BOB, { users: { [ALICE]: 100, [BOB]: 50 } }),
      topic("T3", BOB),
      topic("T4", ALICE),
    ],
    [
      ["END", "T3", "PA2", "T2", "PA1", "T1", "START"],
      ["END", "T4", "PB", "PA1"],
    ],
    ["T3", "PA2"],
  );
});

test("no power levels event: the creator sorts first as power 100 (content.creator in v10, the sender in v11)", async () => {
  for (const version of ["10", "11"]) {
    const dag = new RoomDag(version);
    await dag.add(createEventSpec(version, ALICE), []);
    await dag.add(member("$ma", ALICE, "join"), ["$CREATE"]);
    await dag.add(joinRules("$jr0", ALICE, "public"), ["$ma"]);
    await dag.add(member("$mb", BOB, "join"), ["$jr0"]);
    // Without power levels state_default is 0: bob may change the join rules too.
    await dag.add(joinRules("$bob", BOB, "invite"), ["$mb"], 10);
    await dag.add(joinRules("$alice", ALICE, "knock"), ["$mb"], 20);
    const state = await dag.stateBefore(["$bob", "$alice"]);
    // Alice (100) goes first despite her later timestamp, so bob's change is applied last and stays.
    assert.equal(state.get(stateKey("m.room.join_rules", "")), "$bob", `v${version}`);
  }
});

/** Events by hand (no auth rules involved), for the ordering primitives. */
function graphOf(events: Array<Partial<StateResEvent> & { event_id: string }>): EventGraph {
  const map = new Map<string, StateResEvent>();
  for (const e of events) {
    map.set(e.event_id, {
      room_id: "!r:example.com",
      type: "m.room.member",
      state_key: ALICE,
      sender: ALICE,
      content: {},
      origin_server_ts: 0,
      auth_events: [],
      prev_events: [],
      depth: 1,
      ...e,
    });
  }
  const g = new EventGraph((id) => map.get(id));
  for (const e of map.values()) g.add(e);
  return g;
}

test("reverse topological power ordering: Kahn's algorithm takes the smallest candidate (Synapse's graph)", () => {
  // l -> o, m -> n, m -> o, n -> o, p -> o; equal power and timestamps, so event IDs break the ties.
  const auth: Record<string, string[]> = { l: ["o"], m: ["n", "o"], n: ["o"], o: [], p: ["o"] };
  const g = graphOf(Object.entries(auth).map(([id, a]) => ({ event_id: id, auth_events: a })));
  assert.deepEqual(reverseTopologicalPowerOrder("10", g, new Set(Object.keys(auth))), ["o", "l", "n", "m", "p"]);
});

test("reverse topological power ordering: higher sender power first, then older, then smaller ID", () => {
  const g = graphOf([
    { event_id: "$create", type: "m.room.create", state_key: "", content: { creator: ALICE, room_version: "10" } },
    {
      event_id: "$pl",
      type: "m.room.power_levels",
      state_key: "",
      content: { users: { [ALICE]: 100, [BOB]: 50 } },
      auth_events: ["$create"],
    },
    { event_id: "$b1", sender: BOB, origin_server_ts: 1, auth_events: ["$create", "$pl"] },
    { event_id: "$a9", sender: ALICE, origin_server_ts: 9, auth_events: ["$create", "$pl"] },
    { event_id: "$c5", sender: CHARLIE, origin_server_ts: 5, auth_events: ["$create", "$pl"] },
    { event_id: "$c4b", sender: CHARLIE, origin_server_ts: 4, auth_events: ["$create", "$pl"] },
    { event_id: "$c4a", sender: CHARLIE, origin_server_ts: 4, auth_events: ["$create", "$pl"] },
    // Depends on $b1 through an event outside the sorted set: still after it.
    { event_id: "$mid", sender: BOB, origin_server_ts: 0, auth_events: ["$b1"] },
    { event_id: "$a0", sender: ALICE, origin_server_ts: 0, auth_events: ["$mid", "$pl"] },
  ]);
  const order = reverseTopologicalPowerOrder("10", g, new Set(["$b1", "$a9", "$c5", "$c4b", "$c4a", "$a0"]));
  assert.deepEqual(order, ["$a9", "$b1", "$a0", "$c4a", "$c4b", "$c5"]);
});

test("sender power level: the cited power levels, else the creator has 100 (content.creator in v10, sender in v11)", () => {
  const g = graphOf([
    { event_id: "$c10", type: "m.room.create", state_key: "", sender: BOB, content: { creator: ALICE } },
    { event_id: "$c11", type: "m.room.create", state_key: "", sender: BOB, content: { room_version: "11" } },
    { event_id: "$pl", type: "m.room.power_levels", state_key: "", content: { users: { [BOB]: 42 } } },
    { event_id: "$alice10", sender: ALICE, auth_events: ["$c10"] },
    { event_id: "$bob10", sender: BOB, auth_events: ["$c10"] },
    { event_id: "$bob11", sender: BOB, auth_events: ["$c11"] },
    { event_id: "$bobpl", sender: BOB, auth_events: ["$c10", "$pl"] },
    { event_id: "$alicepl", sender: ALICE, auth_events: ["$c10", "$pl"] },
    { event_id: "$none", sender: ALICE },
  ]);
  const level = (v: string, id: string) => senderPowerLevel(v, g, g.get(id)!);
  assert.equal(level("10", "$alice10"), 100);
  assert.equal(level("10", "$bob10"), 0);
  assert.equal(level("11", "$bob11"), 100);
  assert.equal(level("10", "$bobpl"), 42);
  assert.equal(level("10", "$alicepl"), 0);
  assert.equal(level("10", "$none"), 0);
});

test("mainline ordering: older mainline base first, events citing no mainline event before all", () => {
  const pl = (id: string, auth: string[]) => ({
    event_id: id,
    type: "m.room.power_levels",
    state_key: "",
    auth_events: auth,
  });
  const t = (id: string, ts: number, auth: string[]) => ({
    event_id: id,
    type: "m.room.topic",
    state_key: "",
    origin_server_ts: ts,
    auth_events: auth,
  });
  const g = graphOf([
    pl("$p1", []),
    pl("$p2", ["$p1"]),
    pl("$p3", ["$p2"]),
    pl("$side", ["$p1"]), // off the mainline: positions like $p1
    t("$on3", 1, ["$p3"]),
    t("$on2", 2, ["$p2"]),
    t("$side1", 0, ["$side"]),
    t("$on1", 5, ["$p1"]),
    t("$nopl", 9, []),
  ]);
  assert.deepEqual(mainlineOrder(g, ["$on3", "$on2", "$side1", "$on1", "$nopl"], "$p3"), [
    "$nopl",
    "$side1",
    "$on1",
    "$on2",
    "$on3",
  ]);
  // No resolved power levels: timestamps decide.
  assert.deepEqual(mainlineOrder(g, ["$on3", "$on2", "$side1", "$on1"], undefined), ["$side1", "$on3", "$on2", "$on1"]);
});

test("auth difference: a set's own events count as in its chain (Synapse's reading)", async () => {
  // C -> B -> A; sets {A, B} and {C}: only C is missing from a chain.
  const g = graphOf([
    { event_id: "A" },
    { event_id: "B", auth_events: ["A"] },
    { event_id: "C", auth_events: ["B"] },
    { event_id: "D", auth_events: ["C"] },
    { event_id: "E", auth_events: ["B"] },
  ]);
  assert.deepEqual(g.authDifference([["A", "B"], ["C"]]), new Set(["C"]));
  assert.deepEqual(g.authDifference([["A", "B"], ["D"]]), new Set(["C", "D"]));
  assert.deepEqual(g.authDifference([["D"], ["E"]]), new Set(["C", "D", "E"]));
  assert.deepEqual(g.authChain(["D"]), new Set(["A", "B", "C"]));
});

test("event graph: loads an auth closure once, through an async fetch; a missing auth event is asked for again", async () => {
  const events = new Map<string, StateResEvent>();
  const put = (id: string, auth: string[]) =>
    events.set(id, {
      event_id: id,
      room_id: "!r:x",
      type: "t",
      state_key: id,
      sender: ALICE,
      content: {},
      origin_server_ts: 0,
      auth_events: auth,
      prev_events: [],
      depth: 1,
    });
  put("a", []);
  put("b", ["a"]);
  put("c", ["b", "late"]);
  put("d", ["b"]);
  const calls: string[] = [];
  const g = new EventGraph(async (id) => {
    calls.push(id);
    return events.get(id);
  });
  await g.load(["d"]);
  assert.deepEqual(calls.sort(), ["a", "b", "d"]);
  await g.load(["c", "d"]);
  assert.deepEqual(calls.sort(), ["a", "b", "c", "d", "late"], "b's closure is neither fetched nor walked again");
  assert.deepEqual(g.authChain(["c"]), new Set(["a", "b", "late"]));
  put("late", ["z"]);
  put("z", []);
  await g.load(["c"]);
  assert.deepEqual(calls.sort(), ["a", "b", "c", "d", "late", "late", "z"], "the missing event turned up");
  assert.deepEqual(g.authChain(["c"]), new Set(["a", "b", "late", "z"]));
  await assert.rejects(
    g.load(["nope"]),
    (e: unknown) => e instanceof StateResError && /nope is unknown/.test(e.message),
  );
});

test("separate: same value everywhere is unconflicted; a missing key or another value is conflicted", () => {
  const k = (s: string) => stateKey("t", s);
  const { unconflicted, conflicted } = separateStateSets([
    new Map([
      [k("same"), "$1"],
      [k("diff"), "$2"],
      [k("only1"), "$3"],
    ]),
    new Map([
      [k("same"), "$1"],
      [k("diff"), "$4"],
    ]),
  ]);
  assert.deepEqual(unconflicted, new Map([[k("same"), "$1"]]));
  assert.deepEqual(
    conflicted,
    new Map([
      [k("diff"), new Set(["$2", "$4"])],
      [k("only1"), new Set(["$3"])],
    ]),
  );
});

test("malformed events (no content, a timestamp that is not a number) still order deterministically", () => {
  const events = [
    { event_id: "$b", origin_server_ts: Number.NaN },
    { event_id: "$a", origin_server_ts: "soon" as unknown as number },
    { event_id: "$c", origin_server_ts: -1 },
    { event_id: "$d", content: null as unknown as Record<string, unknown>, state_key: BOB },
  ];
  const orders = new Set<string>();
  for (const list of [events, [...events].reverse()]) {
    const g = graphOf(list);
    orders.add(reverseTopologicalPowerOrder("10", g, new Set(list.map((e) => e.event_id))).join());
    orders.add(
      mainlineOrder(
        g,
        list.map((e) => e.event_id),
        undefined,
      ).join(),
    );
  }
  assert.deepEqual([...orders], ["$c,$a,$b,$d"]);
  assert.equal(
    isPowerEvent({ type: "m.room.member", sender: ALICE, state_key: BOB, content: null as unknown as object }),
    false,
  );
});

test("power events: power levels, join rules, kicks and bans; not self-leaves or joins", () => {
  const e = (type: string, sender: string, state_key: string | undefined, membership?: string) => ({
    type,
    sender,
    state_key,
    content: membership ? { membership } : {},
  });
  assert.equal(isPowerEvent(e("m.room.power_levels", ALICE, "")), true);
  assert.equal(isPowerEvent(e("m.room.join_rules", ALICE, "")), true);
  assert.equal(isPowerEvent(e("m.room.member", ALICE, BOB, "ban")), true);
  assert.equal(isPowerEvent(e("m.room.member", ALICE, BOB, "leave")), true);
  assert.equal(isPowerEvent(e("m.room.member", BOB, BOB, "leave")), false);
  assert.equal(isPowerEvent(e("m.room.member", ALICE, BOB, "invite")), false);
  assert.equal(isPowerEvent(e("m.room.topic", ALICE, "")), false);
  assert.equal(isPowerEvent(e("m.room.power_levels", ALICE, undefined)), false);
});

test("iterative auth checks: a rejected auth event is not used when the state lacks the key", async () => {
  const dag = new RoomDag("10");
  await dag.add(createEventSpec("10", ALICE), []);
  await dag.add(member("$ma", ALICE, "join"), ["$CREATE"]);
  await dag.add(joinRules("$jr", ALICE, "public"), ["$ma"]);
  const mb = await dag.add(member("$mb", BOB, "join"), ["$jr"]);
  const topicEv = await dag.add(topic("$t", BOB), ["$mb"]);
  assert.equal(topicEv.rejected, undefined, "no power levels: state_default is 0");
  const state = () => new Map<StateKey, string>([[stateKey("m.room.create", ""), "$CREATE"]]);
  // Bob's membership comes from the topic's own auth events.
  assert.equal(iterativeAuthChecks("10", dag.graph, state(), ["$t"]).get(stateKey("m.room.topic", "")), "$t");
  mb.rejected = true;
  assert.equal(iterativeAuthChecks("10", dag.graph, state(), ["$t"]).get(stateKey("m.room.topic", "")), undefined);
});

test("bad input: unknown state events, events of two rooms and unsupported room versions are clear errors", async () => {
  const sets = [new Map([[stateKey("t", ""), "$a"]]), new Map([[stateKey("t", ""), "$b"]])];
  await assert.rejects(
    resolveStateV2("10", sets, () => undefined),
    /event \$(a|b) is unknown/,
  );
  await assert.rejects(
    resolveStateV2("1", sets, () => undefined),
    /unsupported room version '1'/,
  );
  const other = (id: string, room_id: string): StateResEvent => ({
    event_id: id,
    room_id,
    type: "t",
    state_key: "",
    sender: ALICE,
    content: {},
    origin_server_ts: 0,
    auth_events: [],
    prev_events: [],
    depth: 1,
  });
  const mixed = new Map([
    ["$a", other("$a", "!one:example.com")],
    ["$b", other("$b", "!two:example.com")],
  ]);
  await assert.rejects(
    resolveStateV2("10", sets, (id) => mixed.get(id)),
    /belongs to !(one|two):example.com, not/,
  );
  assert.deepEqual(await resolveStateV2("10", [], () => undefined), new Map());
  assert.deepEqual(await resolveStateV2("10", [sets[0]], () => undefined), sets[0]);
});
