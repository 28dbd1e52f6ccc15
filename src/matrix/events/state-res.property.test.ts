/**
 * Properties of state resolution over fuzzed rooms: three servers fork and merge a room while sending random
 * state (power levels, kicks, bans, joins, leaves, join rules, topics; many fail auth and are rejected, as a
 * real server would reject them). Every merge is then recomputed the way other servers would: state sets in
 * other orders, entries inserted in other orders, a fresh event graph behind an async fetch, and the plain
 * transcription of the spec kept with the bench as an independent oracle. All must agree.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { resolveStateV2Plain } from "../../../bench/matrix/state-res-plain.ts";
import { rng } from "../../core/prng.ts";
import type { StateKey } from "./auth.ts";
import { EventGraph } from "./auth-chain.ts";
import { resolveStateV2, type StateMap } from "./state-res.ts";
import { createEventSpec, type EventSpec, joinRules, member, powerLevels, RoomDag, topic } from "./testing.ts";

const USERS = ["@alice:a.test", "@bob:b.test", "@carol:c.test", "@dan:a.test", "@erin:b.test", "@frank:c.test"];
const LEVELS = [0, 0, 25, 50, 50, 75, 100];

async function fuzzRoom(seed: number, version: string, steps: number) {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  // v12: the room ID is the create event's, and alice (the creator) may not be listed in power levels.
  const dag = new RoomDag(version, version === "12" ? undefined : "!fuzz:a.test");
  const [alice] = USERS;
  const creatorLevel = version === "12" ? {} : { [alice]: 100 };
  let tip = (await dag.add(createEventSpec(version, alice), [])).event_id;
  const opening: EventSpec[] = [
    member("$alice-join", alice, "join"),
    powerLevels("$pl0", alice, { users: { ...creatorLevel, [USERS[1]]: 50, [USERS[2]]: 50 } }),
    joinRules("$jr0", alice, "public"),
    ...USERS.slice(1).map((u, i) => member(`$join${i}`, u, "join")),
  ];
  for (const spec of opening) tip = (await dag.add(spec, [tip])).event_id;

  const tips = [tip, tip, tip];
  for (let i = 0; i < steps; i += 1) {
    const s = Math.floor(r() * tips.length);
    const prevs = new Set([tips[s]]);
    if (r() < 0.3) prevs.add(pick(tips));
    if (r() < 0.1) prevs.add(pick(tips));
    const sender = pick(USERS);
    const target = pick(USERS);
    const id = `$e${i}`;
    const kind = r();
    let spec: EventSpec;
    if (kind < 0.2) spec = topic(id, sender);
    else if (kind < 0.4) {
      const users: Record<string, number> = { ...creatorLevel };
      for (const u of USERS.slice(1)) if (r() < 0.6) users[u] = pick(LEVELS);
      spec = powerLevels(id, sender, { users, ...(r() < 0.3 ? { state_default: pick(LEVELS) } : {}) });
    } else if (kind < 0.8) {
      const membership = pick(["join", "leave", "ban", "invite", "leave", "join"]);
      spec = member(id, target, membership, membership === "join" ? target : sender);
    } else if (kind < 0.9) spec = joinRules(id, sender, pick(["public", "invite"]));
    else spec = { id, type: "m.room.message", sender, content: { body: id } };
    // Timestamps collide now and then, so event IDs have to break ties too.
    await dag.add(spec, [...prevs], Math.floor(i / 2));
    tips[s] = id;
    if (r() < 0.15) tips[(s + 1) % tips.length] = id;
  }
  return { dag, tips: [...new Set(tips)] };
}

/** The same map with entries inserted in reverse. */
const reversed = (m: StateMap): StateMap => new Map([...m].reverse());

function permutations<T>(xs: T[]): T[][] {
  if (xs.length <= 1) return [xs];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
}

const sorted = (m: Map<StateKey, string>) => new Map([...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

for (const version of ["10", "11", "12"]) {
  test(`fuzzed forks (v${version}): every merge resolves the same in any order, on a fresh graph, and as the plain transcription`, async () => {
    let merges = 0;
    let conflictedMerges = 0;
    let rejected = 0;
    for (let seed = 1; seed <= 12; seed += 1) {
      const { dag, tips } = await fuzzRoom(seed * 7919 + Number(version), version, 70);
      rejected += [...dag.events.values()].filter((e) => e.rejected).length;
      const mergeEvents = [...dag.events.values()].filter((e) => e.prev_events.length > 1).map((e) => e.prev_events);
      for (const prevs of [...mergeEvents, tips]) {
        if (prevs.length < 2) continue;
        merges += 1;
        const sets = prevs.map((p) => dag.stateAfter.get(p)!);
        const want = sorted(await resolveStateV2(version, sets, dag.graph));
        if (new Set(sets.map((s) => JSON.stringify([...sorted(new Map(s))]))).size > 1) conflictedMerges += 1;
        for (const order of permutations(sets.map((_, i) => i))) {
          const fresh = new EventGraph(async (id) => dag.events.get(id));
          const got = await resolveStateV2(
            version,
            order.map((i) => reversed(sets[i])),
            fresh,
          );
          assert.deepEqual(sorted(got), want, `seed ${seed}, merge of ${prevs.join(",")}, order ${order.join(",")}`);
        }
        assert.deepEqual(sorted(resolveStateV2Plain(version, sets, dag.events)), want, `seed ${seed}, plain`);
      }
    }
    if (process.env.FUZZ_DEBUG) console.log({ merges, conflictedMerges, rejected });
    // The fuzz must exercise what it claims to: real conflicts, and rejected events among them.
    assert.ok(merges > 50, `only ${merges} merges`);
    assert.ok(conflictedMerges > 30, `only ${conflictedMerges} merges with conflicts`);
    assert.ok(rejected > 20, `only ${rejected} rejected events`);
  });
}

test("resolutions running at once on one graph behind an async fetch agree with one at a time", async () => {
  const { dag } = await fuzzRoom(2024, "11", 80);
  const merges = [...dag.events.values()].filter((e) => e.prev_events.length > 1);
  assert.ok(merges.length > 5, `only ${merges.length} merges`);
  const graph = new EventGraph(async (id) => {
    await new Promise((r) => setImmediate(r));
    return dag.events.get(id);
  });
  const sets = (e: { prev_events: readonly string[] }) => e.prev_events.map((p) => dag.stateAfter.get(p)!);
  const together = await Promise.all(merges.map((e) => resolveStateV2("11", sets(e), graph)));
  for (const [i, e] of merges.entries()) {
    assert.deepEqual(sorted(together[i]), sorted(await resolveStateV2("11", sets(e), dag.graph)), e.event_id);
  }
});

test("a single state set, or the same set twice, resolves to itself", async () => {
  const { dag, tips } = await fuzzRoom(42, "10", 30);
  const s = dag.stateAfter.get(tips[0])!;
  const fetch = (id: string) => dag.events.get(id);
  assert.deepEqual(sorted(await resolveStateV2("10", [s], fetch)), sorted(s));
  assert.deepEqual(sorted(await resolveStateV2("10", [s, reversed(s)], fetch)), sorted(s));
});
