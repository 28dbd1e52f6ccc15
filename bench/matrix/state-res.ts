/**
 * State resolution v2 (issue 12): two forks of a 5,000-member room, each with 500 state events since they split
 * (power levels changes, kicks, bans, self-leaves, topics and names; sent by the admin and ten moderators, one
 * fork demoting a moderator who keeps kicking on the other), so 1,000 conflicting state events. Auth chains have
 * realistic depth: 20 power levels changes in the room's history, invites before joins, members who left and
 * came back. Every event passed the authorization rules when built.
 *
 * Figures: the resolution, cold (a fresh event graph loading the auth closure from a map) and warm (the graph a
 * room keeps between resolutions); target <= 100 ms. Baseline, same run, same inputs, same answer (checked): a
 * plain transcription of the spec's steps (bench/matrix/state-res-plain.ts: every auth chain walked afresh, both
 * orderings by repeated scanning), which is what the data structures are for. Memory: bytes per entry of the
 * resolved 5,000-member state map (the Map alone, its strings shared with the events; and with its own strings),
 * next to the entry's canonical JSON text.
 */
import { createHash } from "node:crypto";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import {
  type AuthCheckEvent,
  type AuthEvent,
  authTypesFor,
  checkAuth,
  type StateKey,
  stateKey,
} from "../../src/matrix/events/auth.ts";
import { EventGraph, type StateResEvent } from "../../src/matrix/events/auth-chain.ts";
import { resolveStateV2, separateStateSets } from "../../src/matrix/events/state-res.ts";
import { type BenchResult, percentile, round, runIfMain } from "./lib.ts";
import { resolveStateV2Plain } from "./state-res-plain.ts";

const VERSION = "10";
const ROOM = "!bench:hs1.test";
const ADMIN = "@admin:hs1.test";
const MODS = Array.from({ length: 10 }, (_, i) => `@mod${i}:hs${(i % 3) + 1}.test`);
const user = (i: number) => `@user${i}:hs${(i % 3) + 1}.test`;

class Room {
  readonly events = new Map<string, StateResEvent>();
  #n = 0;

  /** Builds an event on `state` (auth events from it), checks it, applies it. Throws when auth fails. */
  send(state: Map<StateKey, string>, tip: string[], type: string, sender: string, key: string, content: object) {
    const auth = new Map<StateKey, AuthEvent>();
    const authIds: string[] = [];
    for (const [t, k] of authTypesFor({ type, sender, state_key: key, content: content as Record<string, unknown> })) {
      const id = state.get(stateKey(t, k));
      if (id === undefined) continue;
      auth.set(stateKey(t, k), this.events.get(id)!);
      authIds.push(id);
    }
    this.#n += 1;
    const event_id = `$${createHash("sha256").update(`ev${this.#n}`).digest("base64url")}`;
    const e: StateResEvent = {
      event_id,
      room_id: ROOM,
      type,
      sender,
      state_key: key,
      content: content as Record<string, unknown>,
      origin_server_ts: 1_700_000_000_000 + this.#n * 10,
      auth_events: authIds,
      prev_events: [...tip],
      depth: this.#n,
    };
    const why = checkAuth(e as AuthCheckEvent, auth, VERSION);
    if (why) throw new Error(`bench room: ${type} by ${sender} fails auth: ${why}`);
    this.events.set(event_id, e);
    state.set(stateKey(type, key), event_id);
    tip.splice(0, tip.length, event_id);
    return e;
  }
}

export function buildForkedRoom(members = 5000, perFork = 500) {
  const room = new Room();
  const state = new Map<StateKey, string>();
  const tip: string[] = [];
  const levels: Record<string, number> = { [ADMIN]: 100 };
  for (const m of MODS) levels[m] = 50;
  const pl = (s: Map<StateKey, string>, t: string[], extra: Record<string, number> = {}) =>
    room.send(s, t, "m.room.power_levels", ADMIN, "", { users: { ...levels, ...extra }, kick: 50, ban: 50 });
  room.send(state, tip, "m.room.create", ADMIN, "", { creator: ADMIN, room_version: VERSION });
  room.send(state, tip, "m.room.member", ADMIN, ADMIN, { membership: "join" });
  pl(state, tip);
  room.send(state, tip, "m.room.join_rules", ADMIN, "", { join_rule: "public" });
  for (const m of MODS) room.send(state, tip, "m.room.member", m, m, { membership: "join" });
  for (let i = 0; i < members; i += 1) {
    const u = user(i);
    if (i % 10 === 0) room.send(state, tip, "m.room.member", MODS[i % MODS.length], u, { membership: "invite" });
    room.send(state, tip, "m.room.member", u, u, { membership: "join" });
    if (i % 10 === 5) {
      room.send(state, tip, "m.room.member", u, u, { membership: "leave" });
      room.send(state, tip, "m.room.member", u, u, { membership: "join" });
    }
    if (i % 250 === 249) {
      levels[u] = 10;
      pl(state, tip);
    }
  }
  const base = new Map(state);
  const fork = (side: number) => {
    const s = new Map(base);
    const t = [...tip];
    const lv = { ...levels };
    // Each side picks ~400 targets in turn; side 1 starts where side 0 is about to stop, so ~40 are shared.
    let next = side === 0 ? 0 : Math.floor(perFork * 0.72);
    const target = () => user(next++ % members);
    for (let i = 0; i < perFork; i += 1) {
      const mod = MODS[(i + side) % (side === 1 ? MODS.length - 1 : MODS.length)];
      const slot = i % 50;
      if (slot === 0) {
        // Power levels change; on side 1 the last moderator is demoted (side 0's kicks by them lose).
        if (side === 1 && i === 0) lv[MODS[MODS.length - 1]] = 0;
        lv[user(members - 1 - i)] = 20 + side;
        room.send(s, t, "m.room.power_levels", ADMIN, "", { users: { ...lv }, kick: 50, ban: 50 });
      } else if (slot < 16) room.send(s, t, "m.room.member", mod, target(), { membership: "leave" });
      else if (slot < 21) room.send(s, t, "m.room.member", mod, target(), { membership: "ban" });
      else if (slot < 41) {
        const u = target();
        room.send(s, t, "m.room.member", u, u, { membership: "leave" });
      } else if (slot < 46) room.send(s, t, "m.room.topic", mod, "", { topic: `side ${side} #${i}` });
      else room.send(s, t, "m.room.name", mod, "", { name: `side ${side} #${i}` });
    }
    return s;
  };
  const before = room.events.size;
  const stateA = fork(0);
  const stateB = fork(1);
  return { events: room.events, stateA, stateB, forkEvents: room.events.size - before };
}

const median = (xs: number[]) => percentile(xs, 50);

function gcFunction(): () => void {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

export async function run(): Promise<BenchResult[]> {
  const { events, stateA, stateB, forkEvents } = buildForkedRoom();
  const sets = [stateA, stateB];
  const { conflicted } = separateStateSets(sets);
  const conflictedEvents = [...conflicted.values()].reduce((n, v) => n + v.size, 0);
  const fetch = (id: string) => events.get(id);

  // Wall time and this process's CPU time of each run: on a shared, oversubscribed machine the CPU figure is the
  // steadier one (it leaves out time spent waiting for a core).
  const timed = async <T>(into: Array<[number, number]>, f: () => T | Promise<T>): Promise<T> => {
    const cpu = process.cpuUsage();
    const t = performance.now();
    const out = await f();
    const used = process.cpuUsage(cpu);
    into.push([performance.now() - t, (used.user + used.system) / 1000]);
    return out;
  };
  const cold: Array<[number, number]> = [];
  let resolved = new Map<StateKey, string>();
  for (let i = 0; i < 9; i += 1) {
    resolved = await timed(i >= 2 ? cold : [], () => resolveStateV2(VERSION, sets, new EventGraph(fetch)));
  }
  const graph = new EventGraph(fetch);
  await resolveStateV2(VERSION, sets, graph);
  const warm: Array<[number, number]> = [];
  for (let i = 0; i < 7; i += 1) await timed(warm, () => resolveStateV2(VERSION, sets, graph));
  const plain: Array<[number, number]> = [];
  for (let i = 0; i < 3; i += 1) {
    const p = await timed(plain, () => resolveStateV2Plain(VERSION, sets, events));
    const same = p.size === resolved.size && [...p].every(([k, v]) => resolved.get(k) === v);
    if (!same) throw new Error("state-res bench: the plain transcription resolved differently");
  }
  const changed = [...resolved].filter(([k, v]) => stateA.get(k) !== v).length;

  // Memory: copies of the resolved state map (strings shared), then copies with strings of their own.
  const gc = gcFunction();
  const copies = 40;
  const measure = (make: () => Map<StateKey, string>) => {
    gc();
    const before = process.memoryUsage().heapUsed;
    const held = Array.from({ length: copies }, make);
    gc();
    const bytes = process.memoryUsage().heapUsed - before;
    if (held.length !== copies) throw new Error("unreachable");
    return bytes / (copies * resolved.size);
  };
  const fresh = (s: string) => Buffer.from(s).toString();
  const mapOnly = measure(() => new Map(resolved));
  const withStrings = measure(() => new Map([...resolved].map(([k, v]) => [fresh(k) as StateKey, fresh(v)])));
  let jsonBytes = 0;
  for (const [k, v] of resolved) {
    const [type, key] = k.split("\u0000");
    jsonBytes += Buffer.byteLength(JSON.stringify([type, key, v]));
  }

  const info = `${forkEvents} state events on the forks, conflicted set ${conflictedEvents} events over ${conflicted.size} keys, ${resolved.size} state entries, ${events.size} events, result differs from fork A on ${changed} keys`;
  const wall = (xs: Array<[number, number]>) => round(median(xs.map((x) => x[0])), 1);
  const cpu = (xs: Array<[number, number]>) => round(median(xs.map((x) => x[1])), 1);
  const vsPlain = (xs: Array<[number, number]>) =>
    `plain spec transcription ${wall(plain)} ms (x${round(wall(plain) / wall(xs), 1)}); CPU ${cpu(xs)} ms vs ${cpu(plain)} ms (x${round(cpu(plain) / cpu(xs), 1)})`;
  return [
    {
      bench: "state-res",
      metric: `resolve 2 forks, cold graph (${info})`,
      value: wall(cold),
      unit: "ms",
      baseline: vsPlain(cold),
      target: "<= 100 ms",
      met: wall(cold) <= 100,
    },
    {
      bench: "state-res",
      metric: "resolve 2 forks, warm graph (the room's EventGraph kept)",
      value: wall(warm),
      unit: "ms",
      baseline: vsPlain(warm),
      target: "<= 100 ms",
      met: wall(warm) <= 100,
    },
    {
      bench: "state-res",
      metric: `memory per state entry, resolved ${resolved.size}-entry map (strings shared with events)`,
      value: round(mapOnly, 1),
      unit: "B",
      baseline: `its JSON text ${round(jsonBytes / resolved.size, 1)} B/entry`,
      target: "",
      met: null,
    },
    {
      bench: "state-res",
      metric: "memory per state entry, map with its own key and ID strings",
      value: round(withStrings, 1),
      unit: "B",
      baseline: `its JSON text ${round(jsonBytes / resolved.size, 1)} B/entry`,
      target: "",
      met: null,
    },
  ];
}

if (import.meta.main) await runIfMain(import.meta, run);
