/**
 * The auth DAG as state resolution sees it (spec rooms/v2 "Auth chain", "Auth difference"): events are fetched
 * once through the caller's `fetch` (the store, a federation response, a test's map) and kept; walks then run
 * synchronously over the cache. Pure: nothing here knows the store.
 *
 * Auth chains are never materialised per event: in a room whose power levels changed 1,000 times each power
 * levels event's chain holds every earlier one, so per-event sets are quadratic. What is remembered instead is
 * the graph itself and, per event, that its whole auth closure is already loaded (so a later resolution in the
 * same room stops walking there). Unions of chains are one linear walk.
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
  readonly #events = new Map<string, StateResEvent>();
  /** Events whose auth closure is entirely in #events (or known missing). */
  readonly #closed = new Set<string>();
  readonly #missing = new Set<string>();

  constructor(fetch: FetchEvent) {
    this.#fetch = fetch;
  }

  /** An event from the cache (after `load`); undefined when unknown. */
  get(eventId: string): StateResEvent | undefined {
    return this.#events.get(eventId);
  }

  /** How many events are cached. */
  get size(): number {
    return this.#events.size;
  }

  /** Adds an event the caller already holds (it skips `fetch`). */
  add(event: StateResEvent): void {
    this.#events.set(event.event_id, event);
  }

  /**
   * Fetches `ids` and their whole auth closure, one frontier at a time (an asynchronous fetch is called for a
   * whole frontier at once, so a store can batch). Unknown auth events are skipped, as if not cited; unknown
   * `ids` are an error, since the caller claims they are state.
   */
  async load(ids: Iterable<string>): Promise<void> {
    let frontier = [...new Set(ids)].filter((id) => !this.#closed.has(id));
    const required = new Set(frontier);
    const visited: string[] = [];
    const seen = new Set<string>(frontier);
    while (frontier.length > 0) {
      const need = frontier.filter((id) => !this.#events.has(id) && !this.#missing.has(id));
      if (need.length > 0) {
        const got = need.map((id) => this.#fetch(id));
        const events = got.some(isPromise) ? await Promise.all(got) : (got as Array<StateResEvent | undefined>);
        for (let i = 0; i < need.length; i += 1) {
          const e = events[i];
          if (e && e.event_id === need[i]) this.#events.set(e.event_id, e);
          else this.#missing.add(need[i]);
        }
      }
      const next: string[] = [];
      for (const id of frontier) {
        visited.push(id);
        const e = this.#events.get(id);
        if (!e) {
          if (required.has(id)) throw new StateResError("M_NOT_FOUND", `state resolution: event ${id} is unknown`);
          continue;
        }
        for (const a of e.auth_events) {
          if (!seen.has(a) && !this.#closed.has(a)) {
            seen.add(a);
            next.push(a);
          }
        }
      }
      frontier = next;
    }
    for (const id of visited) this.#closed.add(id);
  }

  /**
   * The union of the auth chains of `ids` (spec "Auth chain": auth events, theirs, and so on), after `load`.
   * With `inclusive`, `ids` themselves are in it too.
   */
  authChain(ids: Iterable<string>, inclusive = false): Set<string> {
    const out = new Set<string>();
    const stack: string[] = [];
    for (const id of ids) {
      if (inclusive) out.add(id);
      const e = this.#events.get(id);
      if (e) stack.push(...e.auth_events);
    }
    while (stack.length > 0) {
      const id = stack.pop()!;
      if (out.has(id)) continue;
      out.add(id);
      const e = this.#events.get(id);
      if (!e) continue;
      for (const a of e.auth_events) if (!out.has(a)) stack.push(a);
    }
    return out;
  }

  /**
   * Spec "Auth difference": the events in some but not all of the state sets' full auth chains. Each set's
   * chain here includes the set's own events, as Synapse computes it (its tests pin that reading). The literal
   * text differs only for an unconflicted state event cited in some sets' chains but not all: the literal reading
   * puts it in the full conflicted set too, where it re-applies itself and can only shift the step 1 order.
   * Cost: one linear walk per state set.
   */
  authDifference(stateSets: ReadonlyArray<Iterable<string>>): Set<string> {
    const counts = new Map<string, number>();
    for (const set of stateSets) {
      for (const id of this.authChain(set, true)) counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    const diff = new Set<string>();
    for (const [id, n] of counts) if (n < stateSets.length) diff.add(id);
    return diff;
  }
}

/** The state key of a state event, or undefined for a message event. */
export function stateKeyOf(e: { type: string; state_key?: string }): StateKey | undefined {
  return typeof e.state_key === "string" ? `${e.type}\u0000${e.state_key}` : undefined;
}
