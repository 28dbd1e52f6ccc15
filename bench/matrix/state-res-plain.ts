/**
 * State resolution v2 written as a plain transcription of the spec's steps, for the bench's same-run baseline
 * and as an independent oracle for the fuzz test: every auth chain is walked afresh from its event (no cache of
 * what was walked), both orderings pick their next event by scanning all remaining ones, mainline positions
 * are found by walking each event's power levels chain. Same authorization rules (checkAuth), same readings of
 * the spec as src/matrix/events/state-res.ts (a set's own events are in its full auth chain). Not for use.
 * Room version 12 (v2.1): the conflicted state subgraph found by testing every event below a conflicted one for a
 * conflicted event in its own auth chain, step 2 from an empty state, the create event taken from the room ID.
 */
import {
  type AuthCheckEvent,
  type AuthEvent,
  authStateTypesFor,
  checkAuth,
  type StateKey,
  stateKey,
} from "../../src/matrix/events/auth.ts";
import type { StateResEvent } from "../../src/matrix/events/auth-chain.ts";
import { createEventIdOfRoom } from "../../src/matrix/events/ids.ts";
import { roomVersionRules } from "../../src/matrix/events/room-versions.ts";
import { isPowerEvent } from "../../src/matrix/events/state-res.ts";

type Events = ReadonlyMap<string, StateResEvent>;
const keyOf = (e: StateResEvent): StateKey => stateKey(e.type, e.state_key!);

function authChainOf(events: Events, id: string): Set<string> {
  const out = new Set<string>();
  const walk = (x: string) => {
    for (const a of events.get(x)?.auth_events ?? []) {
      if (out.has(a)) continue;
      out.add(a);
      walk(a);
    }
  };
  walk(id);
  return out;
}

function cited(events: Events, e: StateResEvent, type: string): StateResEvent | undefined {
  return e.auth_events.map((a) => events.get(a)).find((a) => a?.type === type && a.state_key === "");
}

/** v12: the create event the room ID names. */
const impliedCreate = (events: Events, e: StateResEvent) => events.get(createEventIdOfRoom(e.room_id) ?? "");

function senderPower(roomVersion: string, events: Events, e: StateResEvent): number {
  const pl = cited(events, e, "m.room.power_levels");
  if (roomVersionRules(roomVersion)!.privilegedCreators) {
    const create = impliedCreate(events, e)!;
    const extra = create.content.additional_creators;
    if (e.sender === create.sender || (Array.isArray(extra) && extra.includes(e.sender))) return Infinity;
  }
  if (pl) {
    const users = (pl.content.users ?? {}) as Record<string, number>;
    return Object.hasOwn(users, e.sender) ? users[e.sender] : Number(pl.content.users_default ?? 0);
  }
  const create = cited(events, e, "m.room.create");
  if (!create) return 0;
  const creator = roomVersionRules(roomVersion)!.implicitCreator ? create.sender : create.content.creator;
  return creator === e.sender ? 100 : 0;
}

function authCheckAll(roomVersion: string, events: Events, state: Map<StateKey, string>, list: string[]) {
  for (const id of list) {
    const e = events.get(id)!;
    const auth = new Map<StateKey, AuthEvent>();
    for (const [t, k] of authStateTypesFor(e)) {
      const key = stateKey(t, k);
      const fromState = state.get(key);
      const implied = t === "m.room.create" ? impliedCreate(events, e) : undefined;
      if (fromState !== undefined) auth.set(key, events.get(fromState)!);
      else if (implied && roomVersionRules(roomVersion)!.roomIdIsCreateHash) {
        if (!implied.rejected) auth.set(key, implied);
      } else {
        const a = e.auth_events.map((x) => events.get(x)).find((x) => x && !x.rejected && keyOf(x) === key);
        if (a) auth.set(key, a);
      }
    }
    if (checkAuth(e as AuthCheckEvent, auth, roomVersion) === null) state.set(keyOf(e), id);
  }
}

/** Removes and returns the smallest of `candidates` by `less`, scanning them all. */
function takeSmallest(candidates: string[], less: (a: string, b: string) => boolean): string {
  let best = 0;
  for (let i = 1; i < candidates.length; i += 1) if (less(candidates[i], candidates[best])) best = i;
  return candidates.splice(best, 1)[0];
}

export function resolveStateV2Plain(
  roomVersion: string,
  stateSets: ReadonlyArray<ReadonlyMap<StateKey, string>>,
  events: Events,
): Map<StateKey, string> {
  if (stateSets.length === 0) return new Map();
  const allKeys = new Set(stateSets.flatMap((s) => [...s.keys()]));
  const unconflicted = new Map<StateKey, string>();
  const conflicted = new Set<string>();
  for (const k of allKeys) {
    const values = stateSets.map((s) => s.get(k));
    if (values.every((v) => v !== undefined && v === values[0])) unconflicted.set(k, values[0]!);
    else for (const v of values) if (v !== undefined) conflicted.add(v);
  }
  const chains = stateSets.map((s) => {
    const c = new Set<string>();
    for (const id of s.values()) {
      c.add(id);
      for (const a of authChainOf(events, id)) c.add(a);
    }
    return c;
  });
  const full = new Set(conflicted);
  for (const c of chains) for (const id of c) if (!chains.every((o) => o.has(id))) full.add(id);
  const v21 = roomVersionRules(roomVersion)!.stateRes === "v2.1";
  if (v21) {
    for (const c of conflicted) {
      for (const x of authChainOf(events, c)) {
        if ([...authChainOf(events, x)].some((y) => conflicted.has(y))) full.add(x);
      }
    }
  }
  for (const id of full) if (events.get(id)?.state_key === undefined) full.delete(id);

  const power = [...full].filter((id) => isPowerEvent(events.get(id)!));
  const chosen = new Set(power);
  for (const p of power) for (const a of authChainOf(events, p)) if (full.has(a)) chosen.add(a);
  const level = (id: string) => senderPower(roomVersion, events, events.get(id)!);
  const powerLess = (a: string, b: string) => {
    const [x, y] = [events.get(a)!, events.get(b)!];
    if (level(a) !== level(b)) return level(a) > level(b);
    if (x.origin_server_ts !== y.origin_server_ts) return x.origin_server_ts < y.origin_server_ts;
    return a < b;
  };
  const sorted: string[] = [];
  const left = [...chosen];
  while (left.length > 0) {
    const done = new Set(sorted);
    const ready = left.filter((id) => [...authChainOf(events, id)].every((a) => !chosen.has(a) || done.has(a)));
    const next = takeSmallest(ready, powerLess);
    left.splice(left.indexOf(next), 1);
    sorted.push(next);
  }
  const state = v21 ? new Map<StateKey, string>() : new Map(unconflicted);
  authCheckAll(roomVersion, events, state, sorted);

  const mainline: string[] = [];
  for (let p = events.get(state.get(stateKey("m.room.power_levels", "")) ?? ""); p; ) {
    mainline.push(p.event_id);
    p = cited(events, p, "m.room.power_levels");
  }
  const position = (id: string) => {
    for (
      let p = cited(events, events.get(id)!, "m.room.power_levels");
      p;
      p = cited(events, p, "m.room.power_levels")
    ) {
      if (mainline.includes(p.event_id)) return mainline.indexOf(p.event_id);
    }
    return Number.POSITIVE_INFINITY;
  };
  const mainlineLess = (a: string, b: string) => {
    const [x, y] = [events.get(a)!, events.get(b)!];
    if (position(a) !== position(b)) return position(a) > position(b);
    if (x.origin_server_ts !== y.origin_server_ts) return x.origin_server_ts < y.origin_server_ts;
    return a < b;
  };
  const rest = [...full].filter((id) => !chosen.has(id));
  const ordered: string[] = [];
  while (rest.length > 0) ordered.push(takeSmallest(rest, mainlineLess));
  authCheckAll(roomVersion, events, state, ordered);
  for (const [k, v] of unconflicted) state.set(k, v);
  return state;
}
