/**
 * A room DAG in memory for state resolution tests and benches: each event gets its auth events from the state
 * before it (the spec's "Auth events selection"), that state being the resolution of the states after its
 * prev_events, as a homeserver computes it. Events failing auth against that state are marked rejected and leave
 * the state unchanged. IDs are given (`$name`), timestamps count up from 0 in the order events are added.
 * Room version 12: the create event's ID is `V12_CREATE_ID` (hash-shaped, so the room ID can be derived from it),
 * the room ID is derived from it, and events do not cite it.
 */
import { type AuthCheckEvent, type AuthEvent, authTypesFor, checkAuth, type StateKey, stateKey } from "./auth.ts";
import { EventGraph, type StateResEvent } from "./auth-chain.ts";
import { createEventIdOfRoom, roomIdOfCreateEvent } from "./ids.ts";
import { roomVersionRules } from "./room-versions.ts";
import { resolveStateV2, type StateMap } from "./state-res.ts";
import type { EventContent } from "./types.ts";

export interface EventSpec {
  id: string;
  type: string;
  sender: string;
  state_key?: string;
  content: EventContent;
}

export class RoomDag {
  readonly roomVersion: string;
  readonly roomId: string;
  readonly events = new Map<string, StateResEvent>();
  readonly stateAfter = new Map<string, Map<StateKey, string>>();
  readonly graph: EventGraph;
  /** How many resolutions `add` ran (forks merged). */
  resolutions = 0;
  #ts = 0;

  constructor(roomVersion = "10", roomId?: string) {
    this.roomVersion = roomVersion;
    this.roomId =
      roomId ??
      (roomVersionRules(roomVersion)?.roomIdIsCreateHash ? roomIdOfCreateEvent(V12_CREATE_ID) : "!test:example.com");
    this.graph = new EventGraph((id) => this.events.get(id));
  }

  /** The state before an event whose prev_events are `prevs`. */
  async stateBefore(prevs: readonly string[], order?: readonly number[]): Promise<Map<StateKey, string>> {
    if (prevs.length === 0) return new Map();
    const sets: StateMap[] = prevs.map((p) => {
      const s = this.stateAfter.get(p);
      if (!s) throw new Error(`unknown prev event ${p}`);
      return s;
    });
    if (sets.length === 1) return new Map(sets[0]);
    this.resolutions += 1;
    return resolveStateV2(this.roomVersion, order ? order.map((i) => sets[i]) : sets, this.graph);
  }

  async add(spec: EventSpec, prevs: readonly string[], ts?: number): Promise<StateResEvent> {
    if (this.events.has(spec.id)) throw new Error(`duplicate event ${spec.id}`);
    const before = await this.stateBefore(prevs);
    const authEvents: string[] = [];
    const authState = new Map<StateKey, AuthEvent>();
    for (const [type, key] of authTypesFor(spec, this.roomVersion)) {
      const id = before.get(stateKey(type, key));
      if (id === undefined || authEvents.includes(id)) continue;
      authEvents.push(id);
      authState.set(stateKey(type, key), this.events.get(id)!);
    }
    // v12: the create event the room ID implies.
    const implied = createEventIdOfRoom(this.roomId);
    const create = implied === undefined ? undefined : this.events.get(implied);
    if (create && !create.rejected && !authState.has(stateKey("m.room.create", "")))
      authState.set(stateKey("m.room.create", ""), create);
    const depth = Math.max(0, ...prevs.map((p) => this.events.get(p)!.depth)) + 1;
    const event: StateResEvent = {
      event_id: spec.id,
      room_id: this.roomId,
      type: spec.type,
      sender: spec.sender,
      content: spec.content,
      ...(spec.state_key === undefined ? {} : { state_key: spec.state_key }),
      origin_server_ts: ts ?? this.#ts,
      auth_events: authEvents,
      prev_events: [...prevs],
      depth,
    };
    this.#ts += 1;
    const rejected = checkAuth(event as AuthCheckEvent, authState, this.roomVersion) !== null;
    if (rejected) event.rejected = true;
    this.events.set(event.event_id, event);
    this.graph.add(event);
    const after = new Map(before);
    if (!rejected && spec.state_key !== undefined) after.set(stateKey(spec.type, spec.state_key), spec.id);
    this.stateAfter.set(spec.id, after);
    return event;
  }
}

/** A room version 12 create event's ID in tests: shaped like a reference hash. */
export const V12_CREATE_ID = `$${"CREATE".padEnd(43, "_")}`;

/** The usual opening of a room: create, creator's join, power levels, join rules. */
export function createEventSpec(roomVersion: string, creator: string, extra: EventContent = {}): EventSpec {
  const content = roomVersion === "10" ? { creator, room_version: "10" } : { room_version: roomVersion };
  const id = roomVersionRules(roomVersion)?.roomIdIsCreateHash ? V12_CREATE_ID : "$CREATE";
  return { id, type: "m.room.create", sender: creator, state_key: "", content: { ...content, ...extra } };
}

export const member = (id: string, user: string, membership: string, sender = user): EventSpec => ({
  id,
  type: "m.room.member",
  sender,
  state_key: user,
  content: { membership },
});

export const powerLevels = (id: string, sender: string, content: EventContent): EventSpec => ({
  id,
  type: "m.room.power_levels",
  sender,
  state_key: "",
  content,
});

export const topic = (id: string, sender: string, text = id): EventSpec => ({
  id,
  type: "m.room.topic",
  sender,
  state_key: "",
  content: { topic: text },
});

export const joinRules = (id: string, sender: string, rule: string): EventSpec => ({
  id,
  type: "m.room.join_rules",
  sender,
  state_key: "",
  content: { join_rule: rule },
});
