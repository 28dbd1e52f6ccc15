/**
 * The state before a new local event, the seam federation's state resolution plugs into. On one server a room
 * never forks: the head has one forward extremity whose state-after group is the new event's state before, and
 * nothing is read (RoomHead.state). Once remote servers send concurrently, a room has several extremities; the
 * state before an event on top of all of them is their states merged by state resolution v2 (the spec's
 * "Server-server API -> Room versions -> state resolution v2"), given here as a `StateResolver` parameter.
 */
import { AmiError } from "../../core/errors.ts";
import { type AuthEvent, type StateKey, stateKey } from "../events/auth.ts";
import type { StateEntry, Store } from "../store/types.ts";
import { AUTH_TYPES, authEventOf, type RoomHead } from "./room-head.ts";

/** The spec's bound on prev_events (PDU "Size limits": at most 20). */
export const MAX_PREV_EVENTS = 20;

/** Merge the states after each of a new event's prev events into the state before it (state resolution v2). */
export type StateResolver = (input: {
  roomId: string;
  roomVersion: string;
  /** The state after each prev event, (type, state_key) -> event ID, in the order of the prev events. */
  states: Map<StateKey, string>[];
}) => Promise<Map<StateKey, string>>;

/** The resolver until federation supplies one: a forked room cannot come to exist without federation. */
export const noStateResolver: StateResolver = async ({ roomId }) => {
  throw new AmiError("M_UNKNOWN", `Room ${roomId} has several forward extremities and no state resolver is configured`);
};

/** The state before a new event on top of several extremities, and the auth state it implies. */
export interface ResolvedState {
  entries: StateEntry[];
  auth: Map<StateKey, AuthEvent>;
}

/**
 * The forked path: read the state after each prev event (state groups; rooms from before the DAG are backfilled
 * on the way), resolve them with `resolve`, and read the auth events of the result for the authorization rules.
 */
export async function resolveStateBefore(
  store: Store,
  roomId: string,
  head: RoomHead,
  prevs: string[],
  resolve: StateResolver,
): Promise<ResolvedState> {
  const states: Map<StateKey, string>[] = [];
  for (const prev of prevs) {
    const g = await store.dag.ensureEventStateGroups(prev);
    if (!g) throw new AmiError("M_UNKNOWN", `Forward extremity ${prev} of ${roomId} has no state`);
    states.push(g.after === null ? new Map() : await store.dag.getStateGroup(g.after));
  }
  const resolved = await resolve({ roomId, roomVersion: head.version, states });
  const entries: StateEntry[] = [];
  const authIds: string[] = [];
  for (const [key, eventId] of resolved) {
    const sep = key.indexOf("\u0000");
    const type = key.slice(0, sep);
    entries.push({ type, stateKey: key.slice(sep + 1), eventId });
    if (AUTH_TYPES.has(type)) authIds.push(eventId);
  }
  const auth = new Map<StateKey, AuthEvent>();
  for (const e of await store.dag.getDagEvents(authIds))
    if (e.stateKey !== null) auth.set(stateKey(e.type, e.stateKey), authEventOf(e));
  return { entries, auth };
}
