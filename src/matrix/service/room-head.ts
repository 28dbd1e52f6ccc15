/**
 * The in-memory "head" of each room: its version, forward extremities (one on a single server; several once
 * federation forks the room), their depth, the state group after them and the auth-relevant part of the current
 * state. Sending an event needs exactly this, so a send never re-reads the room's state. Entries are only changed
 * under the room's send lock (service/rooms.ts).
 */
import { AmiError } from "../../core/errors.ts";
import { type AuthEvent, type StateKey, stateKey } from "../events/auth.ts";
import type { Store, StoredEvent } from "../store/types.ts";

/** State types the authorization rules read (see authTypesFor). */
export const AUTH_TYPES: ReadonlySet<string> = new Set([
  "m.room.create",
  "m.room.power_levels",
  "m.room.join_rules",
  "m.room.member",
  "m.room.third_party_invite",
]);

export interface RoomHead {
  version: string;
  /** The room's forward extremities, newest first: the next local event's prev_events (up to MAX_PREV_EVENTS). */
  extremities: string[];
  /** Greatest depth among the extremities (0 before the create event). */
  depth: number;
  auth: Map<StateKey, AuthEvent>;
  /**
   * The state group after the single extremity (null: the empty state, before the create event) and its delta
   * chain length; null when there are several extremities (their states must be resolved first, event-state.ts).
   */
  state: { group: number | null; chain: number } | null;
}

export function authEventOf(
  e: Pick<StoredEvent, "eventId" | "type" | "stateKey" | "sender" | "pdu" | "roomId">,
): AuthEvent {
  return {
    event_id: e.eventId,
    type: e.type,
    state_key: e.stateKey ?? undefined,
    sender: e.sender,
    content: e.pdu.content ?? {},
    room_id: e.roomId,
  };
}

/** Read a room's head from the store; null when the room is unknown. */
export async function loadHead(store: Store, roomId: string): Promise<RoomHead | null> {
  const room = await store.rooms.getRoom(roomId);
  if (!room) return null;
  const [known, state] = await Promise.all([
    store.dag.getForwardExtremities(roomId),
    store.events.getCurrentState(roomId),
  ]);
  // No extremity but events (a new room has neither): never root a second DAG, build on the newest event.
  const latest = known.length === 0 ? await store.events.getLatestEvent(roomId) : null;
  const extremities = latest ? [{ eventId: latest.eventId, depth: latest.depth }] : known;
  const auth = new Map<StateKey, AuthEvent>();
  for (const e of state)
    if (e.stateKey !== null && AUTH_TYPES.has(e.type)) auth.set(stateKey(e.type, e.stateKey), authEventOf(e));
  const head: RoomHead = {
    version: room.version,
    extremities: extremities.map((x) => x.eventId),
    depth: extremities[0]?.depth ?? 0,
    auth,
    state: extremities.length > 1 ? null : { group: null, chain: 0 },
  };
  if (extremities.length === 1) {
    // A room last written before the DAG gets its extremity's state group here, once (a snapshot).
    const g = await store.dag.ensureEventStateGroups(extremities[0].eventId);
    if (!g)
      throw new AmiError(
        "M_UNKNOWN",
        `Forward extremity ${extremities[0].eventId} of ${roomId} is not a timeline event`,
      );
    head.state = { group: g.after, chain: g.afterChain };
  }
  return head;
}

/**
 * An LRU of room heads, bounded both in rooms and in auth events summed over the cached heads (a head holds
 * every member event of its room, so a count bound alone would let a few huge rooms take unbounded memory).
 * Map keeps insertion order, so re-inserting on access makes the first key the least recent.
 */
export class HeadCache {
  readonly #max: number;
  readonly #maxAuth: number;
  readonly #map = new Map<string, { head: RoomHead; weight: number }>();
  #weight = 0;

  constructor(max: number, maxAuthEvents = Number.POSITIVE_INFINITY) {
    this.#max = max;
    this.#maxAuth = maxAuthEvents;
  }

  get(roomId: string): RoomHead | undefined {
    const e = this.#map.get(roomId);
    if (e) {
      this.#map.delete(roomId);
      this.#map.set(roomId, e);
    }
    return e?.head;
  }

  /** Insert or refresh (call again after the head's auth map grew, so its weight is counted). */
  set(roomId: string, head: RoomHead): void {
    this.delete(roomId);
    const weight = head.auth.size + 1;
    this.#map.set(roomId, { head, weight });
    this.#weight += weight;
    // The newest entry always stays, even when it alone is over the budget.
    while (this.#map.size > 1 && (this.#map.size > this.#max || this.#weight > this.#maxAuth))
      this.delete(this.#map.keys().next().value as string);
  }

  delete(roomId: string): void {
    const e = this.#map.get(roomId);
    if (!e) return;
    this.#map.delete(roomId);
    this.#weight -= e.weight;
  }

  get size(): number {
    return this.#map.size;
  }

  /** Auth events (plus one per room) held, as counted at each set(). */
  get weight(): number {
    return this.#weight;
  }
}
