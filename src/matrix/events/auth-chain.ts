/**
 * The auth DAG as state resolution sees it (spec rooms/v2 "Auth chain", "Auth difference"): events are fetched
 * once through the caller's `fetch` (the store, a federation response, a test's map) and kept; walks then run
 * synchronously over the cache. Pure: nothing here knows the store.
 *
 * Auth chains are never materialised per event: in a room whose power levels changed 1,000 times each power
 * levels event's chain holds every earlier one, so per-event sets are quadratic. What is remembered instead is
 * the graph itself, interned (an integer per event, its auth events as integers), and per event whether its
 * whole auth closure is loaded, so a later resolution in the same room neither fetches nor walks it again to
 * load. A union of chains is one linear walk over integers, marking a typed array.
 */
import type { StateKey } from "./auth.ts";
import type { EventContent } from "./types.ts";

/** What state resolution reads of a PDU (the federation format plus its ID and what we decided about it). */
export interface StateResEvent {
  event_id: string;
  room_id: string;
  type: string;
  /** Present on state events. */
  state_key?: string;
  sender: string;
  content: EventContent;
  origin_server_ts: number;
  auth_events: readonly string[];
  prev_events: readonly string[];
  depth: number;
  redacts?: string;
  /**
   * The event failed the auth checks against its own auth events when received. The spec leaves such events out
   * of the auth events of the iterative auth checks; everything else treats it as usual.
   */
  rejected?: boolean;
}

/** Looks an event up by ID; undefined when unknown. Synchronous (a map) or asynchronous (a store). */
export type FetchEvent = (eventId: string) => StateResEvent | undefined | Promise<StateResEvent | undefined>;

export class StateResError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "StateResError";
    this.code = code;
  }
}

const isPromise = <T>(x: T | Promise<T>): x is Promise<T> => typeof (x as { then?: unknown })?.then === "function";

export class EventGraph {
  readonly #fetch: FetchEvent;
  // Events are interned: an index per event ID (known, missing or not fetched yet), and walks mark indices in a
  // typed array stamped with a walk number, so a walk allocates nothing per visited event.
  readonly #index = new Map<string, number>();
  readonly #ids: string[] = [];
  readonly #events: Array<StateResEvent | undefined> = [];
  readonly #auth: number[][] = [];
  /** 0: not fetched, or fetched and missing; 1: fetched (or added); 2: also its whole auth closure is known. */
  #loaded = new Uint8Array(1024);
  #mark = new Uint32Array(1024);
  #walk = 0;

  constructor(fetch: FetchEvent) {
    this.#fetch = fetch;
  }

  /** An event from the cache (after `load`); undefined when unknown. */
  get(eventId: string): StateResEvent | undefined {
    const i = this.#index.get(eventId);
    return i === undefined ? undefined : this.#events[i];
  }

  /** How many events are cached. */
  get size(): number {
    return this.#events.filter(Boolean).length;
  }

  /** Adds an event the caller already holds (it skips `fetch`). */
  add(event: StateResEvent): void {
    const i = this.#intern(event.event_id);
    if (this.#events[i] !== undefined) return; // an event ID names one event: nothing to update
    this.#events[i] = event;
    this.#auth[i] = event.auth_events.map((a) => this.#intern(a));
    this.#loaded[i] = 1;
  }

  #intern(id: string): number {
    let i = this.#index.get(id);
    if (i !== undefined) return i;
    i = this.#ids.length;
    this.#index.set(id, i);
    this.#ids.push(id);
    this.#events.push(undefined);
    this.#auth.push([]);
    if (i >= this.#mark.length) {
      const mark = new Uint32Array(this.#mark.length * 2);
      mark.set(this.#mark);
      this.#mark = mark;
      const loaded = new Uint8Array(this.#loaded.length * 2);
      loaded.set(this.#loaded);
      this.#loaded = loaded;
    }
    return i;
  }

  #newWalk(): number {
    this.#walk += 1;
    if (this.#walk === 0xffffffff) {
      this.#mark.fill(0);
      this.#walk = 1;
    }
    return this.#walk;
  }

  /**
   * Fetches `ids` and their whole auth closure, one frontier at a time (an asynchronous fetch is called for a
   * whole frontier at once, so a store can batch). Unknown auth events are skipped, as if not cited; unknown
   * `ids` are an error, since the caller claims they are state.
   */
  async load(ids: Iterable<string>): Promise<void> {
    // Its own seen set, not the walk marks: other loads and walks run while this one awaits its fetches.
    const seen = new Set<number>();
    let frontier: number[] = [];
    for (const id of ids) {
      const i = this.#intern(id);
      if (this.#loaded[i] === 2 || seen.has(i)) continue;
      seen.add(i);
      frontier.push(i);
    }
    const required = new Set(frontier);
    const visited: number[] = [];
    // A closure with a missing event is not marked complete: the event may turn up later (an outlier fetched).
    let complete = true;
    while (frontier.length > 0) {
      const need = frontier.filter((i) => this.#loaded[i] === 0);
      if (need.length > 0) {
        const got = need.map((i) => this.#fetch(this.#ids[i]));
        const events = got.some(isPromise) ? await Promise.all(got) : (got as Array<StateResEvent | undefined>);
        for (let n = 0; n < need.length; n += 1) {
          const e = events[n];
          if (e && e.event_id === this.#ids[need[n]]) this.add(e);
        }
      }
      const next: number[] = [];
      for (const i of frontier) {
        if (!this.#events[i]) {
          if (required.has(i)) {
            throw new StateResError("M_NOT_FOUND", `state resolution: event ${this.#ids[i]} is unknown`);
          }
          complete = false;
          continue;
        }
        visited.push(i);
        for (const a of this.#auth[i]) {
          if (this.#loaded[a] === 2 || seen.has(a)) continue;
          seen.add(a);
          next.push(a);
        }
      }
      frontier = next;
    }
    if (complete) for (const i of visited) this.#loaded[i] = 2;
  }

  /** Visits the auth closure of `starts` (and `starts` when `inclusive`), each event once. */
  #visit(starts: Iterable<string>, inclusive: boolean, visit: (i: number) => void): void {
    const walk = this.#newWalk();
    const mark = this.#mark;
    const stack: number[] = [];
    const push = (i: number) => {
      if (mark[i] === walk) return;
      mark[i] = walk;
      visit(i);
      stack.push(i);
    };
    for (const id of starts) {
      const i = this.#index.get(id);
      if (i === undefined) continue;
      if (inclusive) push(i);
      else for (const a of this.#auth[i]) push(a);
    }
    while (stack.length > 0) for (const a of this.#auth[stack.pop()!]) push(a);
  }

  /**
   * The union of the auth chains of `ids` (spec "Auth chain": auth events, theirs, and so on), after `load`.
   * With `inclusive`, `ids` themselves are in it too; with `within`, only the chain's events in that set.
   */
  authChain(ids: Iterable<string>, inclusive = false, within?: ReadonlySet<string>): Set<string> {
    const out = new Set<string>();
    const names = this.#ids;
    this.#visit(ids, inclusive, (i) => {
      if (!within || within.has(names[i])) out.add(names[i]);
    });
    return out;
  }

  /**
   * Spec "Auth difference": the events in some but not all of the state sets' full auth chains. Each set's
   * chain here includes the set's own events, as Synapse computes it (its tests pin that reading). The literal
   * text differs only for an unconflicted state event cited in some sets' chains but not all: the literal reading
   * puts it in the full conflicted set too, where it re-applies itself and can only shift the step 1 order.
   * Cost: one linear walk per state set.
   */
  /**
   * Room version 12's "conflicted state subgraph" (state resolution v2.1, MSC4297), after `load`: every event on
   * an auth path from one event of `conflicted` to another (endpoints included). That is the events reachable
   * from the set through `auth_events` (the set included) from which the set is reachable again. One walk down
   * from the set, then one iterative post-order pass deciding, for each event reached, whether it leads back.
   */
  conflictedSubgraph(conflicted: Iterable<string>): Set<string> {
    const inSet = new Set<number>();
    for (const id of conflicted) {
      const i = this.#index.get(id);
      if (i !== undefined) inSet.add(i);
    }
    // 0: not decided, 1: on the stack, 2: leads to the set, 3: does not.
    const state = new Uint8Array(this.#ids.length);
    const out = new Set<string>();
    for (const start of inSet) {
      if (state[start] !== 0) continue;
      const stack: Array<[number, boolean]> = [[start, false]];
      while (stack.length > 0) {
        const [i, expanded] = stack.pop()!;
        if (!expanded) {
          if (state[i] !== 0) continue;
          state[i] = 1;
          stack.push([i, true]);
          for (const a of this.#auth[i]) if (state[a] === 0) stack.push([a, false]);
          continue;
        }
        // An auth event still "on the stack" here would be a cycle, which content-addressed IDs cannot make.
        let leads = false;
        for (const a of this.#auth[i]) if (state[a] === 2) leads = true;
        // A member of the set is an endpoint; an event below it counts only when it leads to the set.
        if (inSet.has(i) || leads) {
          state[i] = 2;
          out.add(this.#ids[i]);
        } else state[i] = 3;
      }
    }
    // Members of the set that lead to no other member are still endpoints of (empty) paths: keep them in.
    return out;
  }

  authDifference(stateSets: ReadonlyArray<Iterable<string>>): Set<string> {
    const counts = new Uint32Array(this.#ids.length);
    const touched: number[] = [];
    for (const set of stateSets) {
      this.#visit(set, true, (i) => {
        if (counts[i] === 0) touched.push(i);
        counts[i] += 1;
      });
    }
    const diff = new Set<string>();
    for (const i of touched) if (counts[i] < stateSets.length) diff.add(this.#ids[i]);
    return diff;
  }
}

/** The state key of a state event, or undefined for a message event. */
export function stateKeyOf(e: { type: string; state_key?: string }): StateKey | undefined {
  return typeof e.state_key === "string" ? `${e.type}\u0000${e.state_key}` : undefined;
}
