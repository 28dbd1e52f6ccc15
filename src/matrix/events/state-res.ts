/**
 * State resolution v2 (spec "Room Versions" -> rooms/v2 "State resolution", used unchanged by room versions 10
 * and 11): the state of a room after merging forks. Pure: events come through `fetch` (or a shared EventGraph),
 * authorization through `checkAuth`; nothing here touches the store.
 *
 *   1. power events of the full conflicted set (plus the conflicted part of their auth chains), in reverse
 *      topological power ordering (Kahn's algorithm, smallest by sender power desc, origin_server_ts, event_id);
 *   2. iterative auth checks of those over the unconflicted state;
 *   3. the other conflicted events in mainline ordering based on the resulting power levels event;
 *   4. iterative auth checks of those;
 *   5. the unconflicted state laid back on top.
 *
 * v10 vs v11: only who the creator is when no power levels event is cited (step 1's tie-break: `content.creator`
 * in v10, the create event's sender in v11); `checkAuth` carries the rest.
 *
 * v12 uses "v2.1" (MSC4297): step 2 starts from an empty state instead of the unconflicted state, and the full
 * conflicted set also holds the conflicted state subgraph (events on auth paths between conflicted events). The
 * create event is implied by the room ID instead of cited, so the tie-break and the auth checks take it from
 * there, and creators sort first (infinite power level).
 *
 * Where the spec's words and Synapse part, this follows the words: a previously rejected event is checked again
 * like any other (Synapse keeps it out), only rejected *auth events* are left out of the checks (Synapse also
 * skips rejected state entries), and the conflicted part of a power event's auth chain is found through events
 * outside the full conflicted set too (Synapse stops there). The auth difference follows Synapse (see
 * EventGraph.authDifference). All of these differ only in rooms with rejected or malformed events.
 */
import { type AuthCheckEvent, type AuthEvent, authStateTypesFor, checkAuth, type StateKey, stateKey } from "./auth.ts";
import { EventGraph, type FetchEvent, StateResError, type StateResEvent, stateKeyOf } from "./auth-chain.ts";
import { createEventIdOfRoom } from "./ids.ts";
import { powerLevelOf } from "./power-levels.ts";
import { roomVersionRules } from "./room-versions.ts";
import type { PowerLevelsContent } from "./types.ts";

export type StateMap = ReadonlyMap<StateKey, string>;

const POWER_LEVELS = stateKey("m.room.power_levels", "");
const CREATE = stateKey("m.room.create", "");

/**
 * The resolution of `stateSets` (each a map (type, state_key) -> event ID). `source` is a fetch function or an
 * EventGraph shared across resolutions in the same room (it keeps what it loaded).
 */
export async function resolveStateV2(
  roomVersion: string,
  stateSets: readonly StateMap[],
  source: FetchEvent | EventGraph,
): Promise<Map<StateKey, string>> {
  if (!roomVersionRules(roomVersion)) {
    throw new StateResError(
      "M_UNSUPPORTED_ROOM_VERSION",
      `state resolution: unsupported room version '${roomVersion}'`,
    );
  }
  if (stateSets.length === 0) return new Map();
  if (stateSets.length === 1) return new Map(stateSets[0]);
  const { unconflicted, conflicted } = separateStateSets(stateSets);
  if (conflicted.size === 0) return unconflicted;
  const graph = source instanceof EventGraph ? source : new EventGraph(source);
  const ids = stateSets.flatMap((s) => [...s.values()]);
  await graph.load(ids);
  // v12: the create event the room ID implies (normally state in every set, so already loaded).
  if (roomVersionRules(roomVersion)?.roomIdIsCreateHash) {
    const roomId = graph.get(ids[0])?.room_id;
    const create = roomId === undefined ? undefined : createEventIdOfRoom(roomId);
    if (create) await graph.load([create]);
  }
  return resolveLoaded(roomVersion, stateSets, unconflicted, conflicted, graph);
}

/** Spec "Unconflicted state map and conflicted state set": a key is unconflicted when every set has the same value. */
export function separateStateSets(stateSets: readonly StateMap[]): {
  unconflicted: Map<StateKey, string>;
  conflicted: Map<StateKey, Set<string>>;
} {
  const unconflicted = new Map<StateKey, string>();
  const conflicted = new Map<StateKey, Set<string>>();
  const n = stateSets.length;
  for (let i = 0; i < n; i += 1) {
    next: for (const [key, value] of stateSets[i]) {
      // A key an earlier set holds was decided there.
      for (let j = 0; j < i; j += 1) if (stateSets[j].has(key)) continue next;
      let same = i === 0;
      for (let j = 1; same && j < n; j += 1) same = stateSets[j].get(key) === value;
      if (same) {
        unconflicted.set(key, value);
        continue;
      }
      const values = new Set<string>();
      for (const other of stateSets) {
        const v = other.get(key);
        if (v !== undefined) values.add(v);
      }
      conflicted.set(key, values);
    }
  }
  return { unconflicted, conflicted };
}

/** Spec "Power events": power levels, join rules, and kicks or bans (a leave or ban someone else sent). */
export function isPowerEvent(e: { type: string; state_key?: string; sender: string; content: object }): boolean {
  if (typeof e.state_key !== "string") return false;
  if (e.type === "m.room.power_levels" || e.type === "m.room.join_rules") return true;
  if (e.type !== "m.room.member" || e.state_key === e.sender) return false;
  const m = (e.content as { membership?: unknown } | null)?.membership;
  return m === "leave" || m === "ban";
}

function resolveLoaded(
  roomVersion: string,
  stateSets: readonly StateMap[],
  unconflicted: Map<StateKey, string>,
  conflicted: Map<StateKey, Set<string>>,
  graph: EventGraph,
): Map<StateKey, string> {
  const v21 = roomVersionRules(roomVersion)?.stateRes === "v2.1";
  // Full conflicted set: conflicted state plus auth difference (v2.1: plus the conflicted state subgraph), of the
  // (state) events we know.
  const full = new Set<string>();
  for (const values of conflicted.values()) for (const id of values) full.add(id);
  for (const id of graph.authDifference(stateSets.map((s) => s.values()))) full.add(id);
  if (v21) for (const id of graph.conflictedSubgraph([...conflicted.values()].flatMap((v) => [...v]))) full.add(id);
  let roomId: string | undefined;
  for (const id of full) {
    const e = graph.get(id);
    if (e?.state_key === undefined) {
      full.delete(id);
      continue;
    }
    roomId ??= e.room_id;
    if (e.room_id !== roomId) {
      throw new StateResError("M_BAD_JSON", `state resolution: event ${id} belongs to ${e.room_id}, not ${roomId}`);
    }
  }

  // Step 1: power events, enlarged by the events of their auth chains that are in the full conflicted set.
  const power = [...full].filter((id) => isPowerEvent(graph.get(id)!));
  const chosen = new Set(power);
  for (const id of graph.authChain(power, false, full)) chosen.add(id);
  const sortedPower = reverseTopologicalPowerOrder(roomVersion, graph, chosen);
  // Step 2 (v2.1: from an empty state).
  const state = iterativeAuthChecks(roomVersion, graph, v21 ? new Map() : new Map(unconflicted), sortedPower);
  // Steps 3 and 4.
  const rest = [...full].filter((id) => !chosen.has(id));
  iterativeAuthChecks(roomVersion, graph, state, mainlineOrder(graph, rest, state.get(POWER_LEVELS)));
  // Step 5.
  for (const [k, v] of unconflicted) state.set(k, v);
  return state;
}

/**
 * `origin_server_ts` as the orderings compare it. PDU checks make it an integer before an event gets here; should
 * one slip through, a number that is not finite would leave the order to chance, so it counts as 0.
 */
const tsOf = (e: StateResEvent): number =>
  typeof e.origin_server_ts === "number" && Number.isFinite(e.origin_server_ts) ? e.origin_server_ts : 0;

/** The first auth event of `e` with this (type, state_key), if known. */
function citedState(graph: EventGraph, e: StateResEvent, type: string): StateResEvent | undefined {
  for (const id of e.auth_events) {
    const a = graph.get(id);
    if (a && a.type === type && a.state_key === "") return a;
  }
  return undefined;
}

/** v12: the create event a room ID implies (it is never cited), if loaded. */
function impliedCreate(graph: EventGraph, roomId: string): StateResEvent | undefined {
  const id = createEventIdOfRoom(roomId);
  return id === undefined ? undefined : graph.get(id);
}

/**
 * Step 1's tie-break: the sender's power level by the power levels (or create) event `e` cites. v12: the create
 * event is the room ID's, and its creators outrank everyone (Infinity).
 */
export function senderPowerLevel(roomVersion: string, graph: EventGraph, e: StateResEvent): number {
  const pl = citedState(graph, e, "m.room.power_levels");
  if (roomVersionRules(roomVersion)?.privilegedCreators) {
    const create = impliedCreate(graph, e.room_id);
    return powerLevelOf(e.sender, pl?.content as PowerLevelsContent | undefined, create);
  }
  const create = citedState(graph, e, "m.room.create");
  if (pl) return powerLevelOf(e.sender, pl.content as PowerLevelsContent, undefined);
  if (!create) return 0;
  const creator = roomVersionRules(roomVersion)?.implicitCreator ? create.sender : create.content.creator;
  return creator === e.sender ? 100 : 0;
}

/**
 * Spec "Reverse topological power ordering" of `events`: the lexicographically smallest topological order of
 * the auth DAG restricted to them (x before y when x is in y's auth chain), smallest by (sender power desc,
 * origin_server_ts, event_id). Two events are ordered by the auth chain, not just a direct citation, so links
 * through events outside `events` count; each such outside event's nearest members is computed once.
 */
export function reverseTopologicalPowerOrder(
  roomVersion: string,
  graph: EventGraph,
  events: ReadonlySet<string>,
): string[] {
  const nearest = new Map<string, readonly string[]>(); // outside event -> its nearest ancestors in `events`
  const parentsOf = (id: string): string[] => {
    const out = new Set<string>();
    for (const a of graph.get(id)?.auth_events ?? []) {
      if (events.has(a)) out.add(a);
      else for (const n of nearestOutside(a)) out.add(n);
    }
    return [...out];
  };
  const nearestOutside = (start: string): readonly string[] => {
    const done = nearest.get(start);
    if (done) return done;
    // Iterative post-order walk: an auth chain can be thousands of events deep.
    const stack: Array<[string, boolean]> = [[start, false]];
    while (stack.length > 0) {
      const [id, expanded] = stack.pop()!;
      if (nearest.has(id)) continue;
      const auth = graph.get(id)?.auth_events ?? [];
      if (!expanded) {
        stack.push([id, true]);
        for (const a of auth) if (!events.has(a) && !nearest.has(a)) stack.push([a, false]);
        continue;
      }
      const out = new Set<string>();
      for (const a of auth) {
        if (events.has(a)) out.add(a);
        else for (const n of nearest.get(a) ?? []) out.add(n);
      }
      nearest.set(id, [...out]);
    }
    return nearest.get(start)!;
  };

  const key = new Map<string, [number, number, string]>();
  const pending = new Map<string, number>();
  const children = new Map<string, string[]>();
  for (const id of events) {
    const e = graph.get(id)!;
    // -0 for a level of 0 sorts as 0; -Infinity (a v12 creator) first of all.
    key.set(id, [-senderPowerLevel(roomVersion, graph, e), tsOf(e), id]);
    const parents = parentsOf(id);
    pending.set(id, parents.length);
    for (const p of parents) {
      const c = children.get(p);
      if (c) c.push(id);
      else children.set(p, [id]);
    }
  }
  const heap = new MinHeap<string>((a, b) => compareKeys(key.get(a)!, key.get(b)!));
  for (const [id, n] of pending) if (n === 0) heap.push(id);
  const out: string[] = [];
  while (heap.size > 0) {
    const id = heap.pop()!;
    out.push(id);
    for (const c of children.get(id) ?? []) {
      const n = pending.get(c)! - 1;
      pending.set(c, n);
      if (n === 0) heap.push(c);
    }
  }
  if (out.length !== events.size) throw new StateResError("M_BAD_JSON", "state resolution: auth events form a cycle");
  return out;
}

function compareKeys(a: [number, number, string], b: [number, number, string]): number {
  if (a[0] !== b[0]) return a[0] < b[0] ? -1 : 1; // not a subtraction: -Infinity - -Infinity is NaN
  if (a[1] !== b[1]) return a[1] < b[1] ? -1 : 1;
  return a[2] < b[2] ? -1 : a[2] > b[2] ? 1 : 0;
}

/**
 * Spec "Mainline ordering" of `events` based on the power levels event `powerLevelsId`: by mainline position
 * (events built on older power levels first; none at all first of all), then origin_server_ts, then event_id.
 * Each power levels event's position is found once.
 */
export function mainlineOrder(
  graph: EventGraph,
  events: readonly string[],
  powerLevelsId: string | undefined,
): string[] {
  const mainline = new Map<string, number>();
  for (let p = powerLevelsId ? graph.get(powerLevelsId) : undefined, i = 0; p && !mainline.has(p.event_id); i += 1) {
    mainline.set(p.event_id, i);
    p = citedState(graph, p, "m.room.power_levels");
  }
  const known = new Map<string, number>(mainline);
  const positionFrom = (start: StateResEvent | undefined): number => {
    const path: string[] = [];
    let pos = Number.POSITIVE_INFINITY;
    for (let p = start; p; p = citedState(graph, p, "m.room.power_levels")) {
      const k = known.get(p.event_id);
      if (k !== undefined) {
        pos = k;
        break;
      }
      if (path.includes(p.event_id)) break; // a cycle cannot happen with content-addressed IDs; stop anyway
      path.push(p.event_id);
    }
    for (const id of path) known.set(id, pos);
    return pos;
  };
  const keyed = events.map((id) => {
    const e = graph.get(id)!;
    return { id, pos: positionFrom(citedState(graph, e, "m.room.power_levels")), ts: tsOf(e) };
  });
  keyed.sort((a, b) => {
    if (a.pos !== b.pos) return a.pos > b.pos ? -1 : 1;
    if (a.ts !== b.ts) return a.ts < b.ts ? -1 : 1;
    return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  });
  return keyed.map((k) => k.id);
}

/**
 * Spec "Iterative auth checks": applies each event of `events` to `state` (in place) when the authorization
 * rules allow it against the state so far; a key the rules need that the state lacks comes from the event's own
 * auth events, unless that auth event was rejected. v12: the create event comes from the room ID, not the event's
 * auth events (it is not in them), when the state lacks it.
 */
export function iterativeAuthChecks(
  roomVersion: string,
  graph: EventGraph,
  state: Map<StateKey, string>,
  events: readonly string[],
): Map<StateKey, string> {
  const implied = roomVersionRules(roomVersion)?.roomIdIsCreateHash === true;
  for (const id of events) {
    const e = graph.get(id);
    const key = e && stateKeyOf(e);
    if (!e || !key) continue;
    const auth = new Map<StateKey, AuthEvent>();
    for (const a of e.auth_events) {
      const ae = graph.get(a);
      const k = ae && !ae.rejected && stateKeyOf(ae);
      if (k) auth.set(k, ae);
    }
    if (implied) {
      const create = impliedCreate(graph, e.room_id);
      if (create && !create.rejected) auth.set(CREATE, create);
    }
    for (const [type, sk] of authStateTypesFor(e)) {
      const k = stateKey(type, sk);
      const current = state.get(k);
      const ce = current === undefined ? undefined : graph.get(current);
      if (ce) auth.set(k, ce);
    }
    if (checkAuth(e as AuthCheckEvent, auth, roomVersion) === null) state.set(key, id);
  }
  return state;
}

/** A binary heap (the candidates of Kahn's algorithm). */
class MinHeap<T> {
  readonly #items: T[] = [];
  readonly #less: (a: T, b: T) => number;
  constructor(compare: (a: T, b: T) => number) {
    this.#less = compare;
  }
  get size(): number {
    return this.#items.length;
  }
  push(x: T): void {
    const a = this.#items;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.#less(a[i], a[p]) >= 0) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }
  pop(): T | undefined {
    const a = this.#items;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.#less(a[l], a[m]) < 0) m = l;
        if (r < a.length && this.#less(a[r], a[m]) < 0) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
}
