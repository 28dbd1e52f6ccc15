/**
 * Incoming PDUs (hs.federation.onPdus, from transactions.ts): the spec's server-server "Checks performed on
 * receipt of a PDU", in order, one room at a time under the room's send lock (service/rooms.ts withRemote):
 *
 *   1. a room we know (else an error for that PDU), the sender on the origin server, a valid format for the room
 *      version (fields, sizes, event ID = the reference hash);
 *   2. signatures (a bad one: dropped, nothing stored) and content hash (a mismatch: the redacted copy goes on);
 *   3. auth against the event's own auth_events (missing ones asked of the origin's `/event`, kept as outliers;
 *      still missing or rejected: the event is rejected);
 *   4. auth against the state before it (its prev events' states, resolved by state resolution v2 when several;
 *      prev events we lack: the origin's get_missing_events is asked once with a small limit, and failing that
 *      the event is kept as an outlier and answered with an error, nothing applied);
 *   5. soft-fail against the current state: kept as an outlier (not in any timeline, never a forward
 *      extremity), answered as accepted as the spec says. It stays in the DAG: an event built on it is judged
 *      against the state its sender saw (stateAfter).
 *
 * Every remote call these checks may need (signers' keys, missing auth events, get_missing_events) is made before
 * the lock is taken (#prefetch), so a slow or hostile origin holds up no other send of the room.
 *
 * A rejected event is stored as a rejected outlier (so it is not fetched again). An accepted one is persisted as
 * a timeline event through the room service, which notifies /sync and WebSocket clients as for a local send.
 */
import { AmiError } from "../../core/errors.ts";
import { type AuthEvent, authStateTypesFor, authTypesFor, checkAuth, type StateKey, stateKey } from "../events/auth.ts";
import { EventGraph, type StateResEvent } from "../events/auth-chain.ts";
import { eventIdFor } from "../events/hashing.ts";
import { createEventIdOfRoom, isValidEventId, isValidRoomId, parseUserId, roomIdOfCreateEvent } from "../events/ids.ts";
import { roomVersionRules } from "../events/room-versions.ts";
import { resolveStateV2 } from "../events/state-res.ts";
import type { Homeserver } from "../hs.ts";
import type { StateResolver } from "../service/event-state.ts";
import type { RoomHead } from "../service/room-head.ts";
import type { DagEvent, EventStateWrite, NewEvent, StateEntry, Store } from "../store/types.ts";
import { roomAdmits } from "./access.ts";
import { invalidateRoomHosts } from "./edus-out.ts";
import { checkPduSignatures, type PduCheck } from "./event-signatures.ts";
import type { OnPdus, PduResults } from "./transactions.ts";

/** Spec "Size limits". */
export const MAX_PDU_BYTES = 65_536;
const MAX_ID_BYTES = 255;
const MAX_PREV = 20;
const MAX_AUTH = 10;
/** get_missing_events is asked for at most this many events (we only fill small gaps in-line). */
const MISSING_LIMIT = 10;

export class PduError extends Error {}

/** Step 1 (format): the PDU's event ID, or a PduError saying what is wrong. Pure. */
export function checkPduFormat(pdu: Record<string, unknown>, roomVersion: string, origin: string): string {
  if (!roomVersionRules(roomVersion)) throw new PduError(`unsupported room version ${roomVersion}`);
  let size: number;
  try {
    size = Buffer.byteLength(JSON.stringify(pdu));
  } catch {
    throw new PduError("not JSON");
  }
  if (size > MAX_PDU_BYTES) throw new PduError(`PDU over ${MAX_PDU_BYTES} bytes`);
  const str = (k: string) => typeof pdu[k] === "string" && Buffer.byteLength(pdu[k] as string) <= MAX_ID_BYTES;
  if (!str("type") || !str("sender") || !str("room_id"))
    throw new PduError("type, sender or room_id missing or too long");
  if (pdu.state_key !== undefined && !str("state_key")) throw new PduError("bad state_key");
  // v12: the create event is never cited (the room ID implies it).
  if (
    roomVersionRules(roomVersion)?.roomIdIsCreateHash &&
    pdu.type !== "m.room.create" &&
    pdu.auth_events !== undefined &&
    Array.isArray(pdu.auth_events) &&
    pdu.auth_events.includes(createEventIdOfRoom(pdu.room_id as string))
  )
    throw new PduError("auth_events must not list the create event in this room version");
  const sender = parseUserId(pdu.sender as string);
  if (!sender) throw new PduError("bad sender");
  // A resident server relays the joins and leaves it accepted by send_join / send_leave (federation/membership.ts):
  // a member event of the sender itself may come from another origin; its server's signature is still required.
  const relayed = pdu.type === "m.room.member" && pdu.state_key === pdu.sender;
  if (sender.server !== origin && !relayed)
    throw new PduError(`sender ${pdu.sender as string} is not on the origin ${origin}`);
  if (!Number.isSafeInteger(pdu.origin_server_ts)) throw new PduError("bad origin_server_ts");
  if (!Number.isSafeInteger(pdu.depth) || (pdu.depth as number) < 0) throw new PduError("bad depth");
  if (!pdu.content || typeof pdu.content !== "object" || Array.isArray(pdu.content)) throw new PduError("bad content");
  const ids = (k: string, max: number) => {
    const v = pdu[k];
    if (!Array.isArray(v) || v.length > max || !v.every((x) => typeof x === "string" && isValidEventId(x)))
      throw new PduError(`bad ${k} (at most ${max} event IDs)`);
  };
  ids("prev_events", MAX_PREV);
  ids("auth_events", MAX_AUTH);
  if (pdu.type !== "m.room.create" && (pdu.prev_events as string[]).length === 0) throw new PduError("no prev_events");
  if (!pdu.hashes || typeof (pdu.hashes as { sha256?: unknown }).sha256 !== "string") throw new PduError("no hashes");
  return eventIdFor(pdu, roomVersion);
}

/**
 * The form state resolution and the auth rules read. A v12 create event has no room_id: it gets the room ID it
 * implies (its own ID with `!`), which the auth rules take as "none".
 */
export function stateResEventOf(e: Pick<DagEvent, "eventId" | "pdu" | "rejected">): StateResEvent {
  const p = e.pdu;
  return {
    event_id: e.eventId,
    room_id: p.room_id ?? (p.type === "m.room.create" ? roomIdOfCreateEvent(e.eventId) : p.room_id),
    type: p.type,
    state_key: p.state_key,
    sender: p.sender,
    content: p.content ?? {},
    origin_server_ts: p.origin_server_ts,
    auth_events: p.auth_events ?? [],
    prev_events: p.prev_events ?? [],
    depth: p.depth,
    redacts: p.redacts,
    rejected: e.rejected !== null,
  };
}

export function authEventFrom(e: StateResEvent): AuthEvent {
  return {
    event_id: e.event_id,
    type: e.type,
    state_key: e.state_key,
    sender: e.sender,
    content: e.content,
    room_id: e.room_id,
  };
}

/**
 * One EventGraph per room (events read through store.dag), in an LRU of `maxRooms`; a graph over `maxEvents`
 * events is dropped and started again, so memory stays bounded.
 */
export class GraphCache {
  readonly #store: Store;
  readonly #map = new Map<string, EventGraph>();
  readonly maxRooms: number;
  readonly maxEvents: number;
  constructor(store: Store, maxRooms = 64, maxEvents = 50_000) {
    this.#store = store;
    this.maxRooms = maxRooms;
    this.maxEvents = maxEvents;
  }

  #gets = 0;

  get(roomId: string): EventGraph {
    let g = this.#map.get(roomId);
    // EventGraph.size counts its cache: looked at every 64th use only.
    if (g && ++this.#gets % 64 === 0 && g.size > this.maxEvents) g = undefined;
    if (g) this.#map.delete(roomId);
    else
      g = new EventGraph(async (id) => {
        const [e] = await this.#store.dag.getDagEvents([id]);
        return e ? stateResEventOf(e) : undefined;
      });
    this.#map.set(roomId, g);
    while (this.#map.size > this.maxRooms) this.#map.delete(this.#map.keys().next().value as string);
    return g;
  }
}

/** The state resolver behind local sends into forked rooms (Rooms.stateResolver): state resolution v2. */
export function dagStateResolver(graphs: GraphCache): StateResolver {
  return ({ roomId, roomVersion, states }) => resolveStateV2(roomVersion, states, graphs.get(roomId));
}

/** Outliers whose state is computed from their prev events, at most, per stateBefore call. */
const MAX_STATE_HOPS = 50;

/**
 * The state after `eventId` as (type, state_key) -> event ID. A timeline event has it stored. An outlier kept
 * without state because it was soft-failed (spec: it stays in the DAG; only it is not a forward extremity) has
 * the state of its prev events (recursively, at most MAX_STATE_HOPS outliers) with itself laid over, provided it
 * passes the auth rules against that state (what it was checked against on receipt): so an event built on a
 * soft-failed one is checked against the state its sender saw, as on every other server, instead of being
 * stranded as an outlier. Null when it cannot be known (a rejected event, a prev we lack, another room).
 */
async function stateAfter(
  store: Store,
  graphs: GraphCache,
  roomId: string,
  version: string,
  eventId: string,
  hops: { left: number },
): Promise<Map<StateKey, string> | null> {
  const g = await store.dag.ensureEventStateGroups(eventId);
  if (g) return g.after === null ? new Map() : new Map(await store.dag.getStateGroup(g.after));
  if (hops.left-- <= 0) return null;
  const [e] = await store.dag.getDagEvents([eventId]);
  if (!e || e.stream !== null || e.rejected !== null || e.roomId !== roomId) return null;
  const prevs = e.pdu.prev_events;
  if (!Array.isArray(prevs) || prevs.length === 0 || prevs.length > MAX_PREV) return null;
  const before = await stateIdsBefore(store, graphs, roomId, version, prevs as string[], hops);
  if (!before) return null;
  const ev = stateResEventOf(e);
  if (checkAuth(ev, await authFromState(graphs.get(roomId), ev, before), version) !== null) return null;
  if (e.stateKey !== null) before.set(stateKey(e.type, e.stateKey), eventId);
  return before;
}

async function stateIdsBefore(
  store: Store,
  graphs: GraphCache,
  roomId: string,
  version: string,
  prevs: string[],
  hops: { left: number },
): Promise<Map<StateKey, string> | null> {
  const states: Map<StateKey, string>[] = [];
  for (const p of prevs) {
    const st = await stateAfter(store, graphs, roomId, version, p, hops);
    if (!st) return null;
    states.push(st);
  }
  return states.length === 1 ? states[0] : resolveStateV2(version, states, graphs.get(roomId));
}

/** The state before an event from its prev events' states (resolved when several); null if one has no state. */
async function stateBefore(
  store: Store,
  graphs: GraphCache,
  roomId: string,
  version: string,
  prevs: string[],
): Promise<{ ids: Map<StateKey, string>; write: EventStateWrite } | null> {
  if (prevs.length === 1) {
    const g = await store.dag.ensureEventStateGroups(prevs[0]);
    if (g) {
      const ids = g.after === null ? new Map<StateKey, string>() : await store.dag.getStateGroup(g.after);
      return { ids, write: { before: g.after, beforeChain: g.afterChain } };
    }
  }
  const ids = await stateIdsBefore(store, graphs, roomId, version, prevs, { left: MAX_STATE_HOPS });
  if (!ids) return null;
  const resolved: StateEntry[] = [];
  for (const [key, eventId] of ids) {
    const sep = key.indexOf("\u0000");
    resolved.push({ type: key.slice(0, sep), stateKey: key.slice(sep + 1), eventId });
  }
  return { ids, write: { before: null, beforeChain: 0, resolved } };
}

/** Auth events the rules read for `ev`, taken from a state (type, state_key) -> event ID. */
async function authFromState(
  graph: EventGraph,
  ev: StateResEvent,
  state: Map<StateKey, string>,
): Promise<Map<StateKey, AuthEvent>> {
  const out = new Map<StateKey, AuthEvent>();
  const keys = authStateTypesFor(ev).map(([t, k]) => stateKey(t, k));
  const ids = keys.map((k) => state.get(k)).filter((x): x is string => x !== undefined);
  await graph.load(ids);
  for (const id of ids) {
    const e = graph.get(id);
    if (e && e.state_key !== undefined) out.set(stateKey(e.type, e.state_key), authEventFrom(e));
  }
  return out;
}

export function outlierOf(eventId: string, pdu: Record<string, unknown>, rejected: string | null) {
  return {
    eventId,
    roomId: (pdu.room_id as string | undefined) ?? roomIdOfCreateEvent(eventId),
    type: pdu.type as string,
    stateKey: (pdu.state_key as string | undefined) ?? null,
    sender: pdu.sender as string,
    originServerTs: pdu.origin_server_ts as number,
    depth: pdu.depth as number,
    pdu,
    rejected,
  };
}

/** Most PDUs held for one room while a join of it is under way (more are answered with an error). */
export const MAX_HELD_PDUS = 1000;

interface Joining {
  version: string;
  /** joinRemote calls under way for the room (two local users may join at once). */
  count: number;
  held: { origin: string; pdu: Record<string, unknown> }[];
}

export interface PduInStats {
  /** PDUs held while their room was being joined, then applied once the join was stored. */
  held: number;
  accepted: number;
  rejected: number;
  softFailed: number;
  outliers: number;
  /** Accepted events after which current_state was corrected to the resolved state. */
  stateResolved: number;
}

export class PduIn {
  readonly #hs: Homeserver;
  readonly graphs: GraphCache;
  readonly stats: PduInStats = { held: 0, accepted: 0, rejected: 0, softFailed: 0, outliers: 0, stateResolved: 0 };
  /** Signature checks made by #prefetch, reused under the lock (keyed by the PDU object, so each is checked once). */
  readonly #sigs = new WeakMap<object, PduCheck>();
  readonly #joining = new Map<string, Joining>();

  constructor(hs: Homeserver, graphs: GraphCache) {
    this.#hs = hs;
    this.graphs = graphs;
  }

  readonly onPdus: OnPdus = async (origin, pdus) => {
    const out: PduResults = {};
    for (const pdu of pdus) {
      const at: { id?: string } = {};
      try {
        out[await this.#one(origin, pdu, at)] = {};
      } catch (e) {
        if (!(e instanceof PduError || e instanceof AmiError))
          this.#hs.log.warn("federation: PDU failed", { err: String(e) });
        // Keyed by the event ID once it could be computed; before that by what the PDU claims, else its index.
        const key = at.id ?? (typeof pdu.event_id === "string" ? pdu.event_id : `#${Object.keys(out).length}`);
        out[key] = { error: e instanceof Error ? e.message : String(e) };
      }
    }
    return out;
  };

  /**
   * A join of `roomId` (room version `version`) starts (join-out.ts, once make_join answered): from now until
   * endJoin, PDUs of the room are held instead of checked — the resident may send events as soon as it accepted
   * our join, before the room and its state are stored here — and applied in arrival order when the join is stored.
   */
  beginJoin(roomId: string, version: string): void {
    const j = this.#joining.get(roomId);
    if (j) j.count++;
    else this.#joining.set(roomId, { version, count: 1, held: [] });
  }

  /** The join of beginJoin ended (`stored`: the room and its state are persisted): apply (or drop) what was held. */
  async endJoin(roomId: string, stored: boolean): Promise<void> {
    const j = this.#joining.get(roomId);
    if (!j) return;
    if (--j.count > 0 && !stored) return;
    this.#joining.delete(roomId);
    if (!stored) {
      if (j.held.length) this.#hs.log.info("federation: join failed, held PDUs dropped", { roomId, n: j.held.length });
      return;
    }
    for (const { origin, pdu } of j.held) {
      const res = await this.onPdus(origin, [pdu]);
      for (const [id, r] of Object.entries(res))
        if (r.error) this.#hs.log.info("federation: a PDU held during a join failed", { roomId, id, err: r.error });
    }
  }

  /** One PDU: its event ID when accepted (or soft-failed), else a throw whose message is the answer's error. */
  async #one(origin: string, raw: Record<string, unknown>, at: { id?: string }): Promise<string> {
    const { store } = this.#hs;
    const roomId = raw.room_id;
    if (typeof roomId !== "string" || !isValidRoomId(roomId)) throw new PduError("no valid room_id");
    const joining = this.#joining.get(roomId);
    if (joining) {
      // Held until the join is stored; its ID (and format) checked now, the rest when applied.
      const id = checkPduFormat(raw, joining.version, origin);
      at.id = id;
      if (joining.held.length >= MAX_HELD_PDUS) throw new PduError(`too many events held for ${roomId} during a join`);
      joining.held.push({ origin, pdu: raw });
      this.stats.held++;
      return id;
    }
    const room = await store.rooms.getRoom(roomId);
    if (!room) throw new PduError(`unknown room ${roomId}`);
    try {
      at.id = eventIdFor(raw, room.version);
    } catch {
      // Not hashable: the format check below says why.
    }
    const eventId = checkPduFormat(raw, room.version, origin);
    // Server ACLs apply to PDUs of the room (spec "Server Access Control Lists").
    if (!(await roomAdmits(this.#hs, roomId, origin)))
      throw new PduError(`server ${origin} is denied by the room's server ACL`);
    const fetched = await this.#prefetch(origin, raw, eventId, roomId, room.version);
    return this.#hs.rooms.withRemote(roomId, (head, persist) =>
      this.#checked(raw, eventId, room.version, head, persist, fetched),
    );
  }

  /**
   * Every remote call a PDU may need, made before the room's lock is taken (a slow or hostile origin must not hold
   * up the room's other sends for its request timeouts): the keys of its signers (cached by the key fetcher, a
   * failure backed off), the auth events we lack (GET /event, kept as outliers), and, when prev events are
   * missing, one get_missing_events from our extremities, with the same done for each event it returns. The
   * checks themselves run under the lock, on what is stored and what was fetched here. Null: no prev was missing.
   */
  async #prefetch(
    origin: string,
    raw: Record<string, unknown>,
    eventId: string,
    roomId: string,
    version: string,
  ): Promise<Record<string, unknown>[] | null> {
    const { store } = this.#hs;
    const [have] = await store.dag.getDagEvents([eventId]);
    if (have && (have.stream !== null || have.rejected !== null)) return null;
    const sig = await this.#signatures(raw, version);
    if (!sig.ok) return null;
    await this.#fetchMissingAuth(origin, roomId, version, raw.auth_events as string[]);
    if ((await store.dag.getMissingEvents(raw.prev_events as string[])).length === 0) return null;
    const ext = (await store.dag.getForwardExtremities(roomId)).slice(0, MAX_PREV).map((e) => e.eventId);
    let events: unknown[] = [];
    try {
      const res = await this.#hs.federation.client.request<{ events?: unknown[] }>(origin, {
        method: "POST",
        path: `/_matrix/federation/v1/get_missing_events/${encodeURIComponent(roomId)}`,
        body: { limit: MISSING_LIMIT, min_depth: 0, earliest_events: ext, latest_events: [eventId] },
      });
      events = Array.isArray(res?.events) ? res.events.slice(0, MISSING_LIMIT) : [];
    } catch {
      // The origin does not serve it or is down: the event stays an outlier.
    }
    const pdus = events.filter((e): e is Record<string, unknown> => !!e && typeof e === "object" && !Array.isArray(e));
    pdus.sort((a, b) => Number(a.depth) - Number(b.depth));
    for (const p of pdus) {
      try {
        if (p.room_id !== roomId) continue;
        const server = typeof p.sender === "string" ? (parseUserId(p.sender)?.server ?? "") : "";
        checkPduFormat(p, version, server);
        if ((await this.#signatures(p, version)).ok)
          await this.#fetchMissingAuth(server, roomId, version, p.auth_events as string[]);
      } catch {
        // Checked (and refused) under the lock.
      }
    }
    return pdus;
  }

  async #checked(
    raw: Record<string, unknown>,
    eventId: string,
    version: string,
    head: RoomHead,
    persist: (event: Omit<NewEvent, "stream">) => Promise<number>,
    /** get_missing_events' answer fetched for this event (#prefetch); undefined for one of those events itself. */
    fetched?: Record<string, unknown>[] | null,
  ): Promise<string> {
    const fetchPrevs = fetched !== undefined;
    const { store } = this.#hs;
    const roomId = raw.room_id as string;
    const [have] = await store.dag.getDagEvents([eventId]);
    if (have && have.stream !== null) return eventId;
    if (have?.rejected) throw new PduError(`rejected earlier: ${have.rejected}`);

    // 2. Signatures and content hash.
    const sig = await this.#signatures(raw, version);
    if (!sig.ok) {
      this.stats.rejected++;
      throw new PduError(`signature check failed: ${sig.reason}`);
    }
    const pdu = sig.pdu as Record<string, unknown>;
    const ev = stateResEventOf({ eventId, pdu, rejected: null });
    const graph = this.graphs.get(roomId);

    // An invite (or knock) of one of our users withdrawn in a room we are not in: we have no state to check it
    // against, nor may we read its auth events, so it is taken on its signatures and what it builds on
    // (#outOfBand), and stored as the invite was (an out-of-band membership).
    if (await this.#outOfBand(roomId, pdu)) {
      const before = (await store.dag.getForwardExtremities(roomId)).map((x) => x.eventId);
      await persist({
        eventId,
        roomId,
        type: "m.room.member",
        stateKey: pdu.state_key as string,
        sender: pdu.sender as string,
        originServerTs: pdu.origin_server_ts as number,
        depth: pdu.depth as number,
        pdu,
      });
      if (before.length > 0) await store.dag.setForwardExtremities(roomId, before);
      this.stats.accepted++;
      return eventId;
    }

    // 3. Auth against its own auth events.
    const authIds = pdu.auth_events as string[];
    // (Missing ones were asked for by #prefetch, before the lock.)
    const authEvents = await store.dag.getDagEvents(authIds);
    const reject = async (reason: string): Promise<never> => {
      await store.dag.persistOutliers([outlierOf(eventId, pdu, reason)]);
      this.stats.rejected++;
      throw new PduError(`rejected: ${reason}`);
    };
    if (authEvents.length !== authIds.length) return reject("auth events unavailable");
    const ownAuth = new Map<StateKey, AuthEvent>();
    for (const a of authEvents) {
      if (a.rejected !== null) return reject(`auth event ${a.eventId} was rejected`);
      if (a.roomId !== roomId) return reject(`auth event ${a.eventId} is of another room`);
      if (a.stateKey === null) return reject(`auth event ${a.eventId} is no state event`);
      const k = stateKey(a.type, a.stateKey);
      if (ownAuth.has(k)) return reject(`two auth events for ${a.type}/${a.stateKey}`);
      ownAuth.set(k, authEventFrom(stateResEventOf(a)));
    }
    for (const k of ownAuth.keys())
      if (!authTypesFor(ev, version).some(([t, s]) => stateKey(t, s) === k))
        return reject("an auth event the rules do not read");
    // v12: the create event the room ID names, which must be here and accepted (rule 2).
    const impliedCreate = createEventIdOfRoom(roomId);
    if (impliedCreate && roomVersionRules(version)?.roomIdIsCreateHash && ev.type !== "m.room.create") {
      const [c] = await store.dag.getDagEvents([impliedCreate]);
      if (!c || c.rejected !== null) return reject("the room's create event is unknown or rejected");
      ownAuth.set(stateKey("m.room.create", ""), authEventFrom(stateResEventOf(c)));
    }
    const r1 = checkAuth(ev, ownAuth, version);
    if (r1) return reject(r1);

    // 4. Auth against the state before it.
    const prevs = pdu.prev_events as string[];
    let missing = await store.dag.getMissingEvents(prevs);
    // Events persisted on the way (the gap filled) make `head` stale: the current state is then read afresh.
    let stale = !fetchPrevs;
    if (missing.length > 0 && fetchPrevs) {
      stale = true;
      missing = await this.#applyMissingPrevs(roomId, version, head, missing, persist, fetched ?? []);
    }
    if (missing.length > 0) {
      await store.dag.persistOutliers([outlierOf(eventId, pdu, null)]);
      this.stats.outliers++;
      throw new PduError(`prev events unknown here (${missing.join(", ")}): kept as an outlier, not applied`);
    }
    // The common case: the event sits on our single extremity, so the state before it is the current state, whose
    // auth part the head holds (no state is read) and the soft-fail check is the same check.
    const onHead =
      !stale &&
      head.state !== null &&
      prevs.length === 1 &&
      head.extremities.length === 1 &&
      prevs[0] === head.extremities[0];
    let write: EventStateWrite;
    if (onHead && head.state) {
      const r2 = checkAuth(ev, head.auth, version);
      if (r2 && !this.#partialUnchecked(roomId, eventId, r2)) return reject(`against the state before it: ${r2}`);
      write = { before: head.state.group, beforeChain: head.state.chain };
    } else {
      const before = await stateBefore(store, this.graphs, roomId, version, prevs);
      if (!before) {
        await store.dag.persistOutliers([outlierOf(eventId, pdu, null)]);
        this.stats.outliers++;
        throw new PduError("a prev event has no state here: kept as an outlier, not applied");
      }
      const r2 = checkAuth(ev, await authFromState(graph, ev, before.ids), version);
      if (r2 && !this.#partialUnchecked(roomId, eventId, r2)) return reject(`against the state before it: ${r2}`);
      write = before.write;

      // 5. Soft-fail against the current state.
      const current = head.state === null || stale ? await this.#currentAuth(roomId, version, ev) : head.auth;
      const r3 = checkAuth(ev, current, version);
      if (r3 && !(r2 === null && this.#partialUnchecked(roomId, eventId, r3))) {
        await store.dag.persistOutliers([outlierOf(eventId, pdu, null)]);
        this.stats.softFailed++;
        this.#hs.log.info("federation: soft-failed event", { eventId, reason: r3 });
        return eventId;
      }
    }

    await persist({
      eventId,
      roomId,
      type: pdu.type as string,
      stateKey: (pdu.state_key as string | undefined) ?? null,
      sender: pdu.sender as string,
      originServerTs: pdu.origin_server_ts as number,
      depth: pdu.depth as number,
      pdu,
      state: write,
    });
    graph.add(ev);
    this.stats.accepted++;
    await this.#syncCurrentState(roomId, version);
    return eventId;
  }

  /**
   * A room joined with members omitted (federation/partial-state.ts) has a state without most members until its
   * resync: an event failing against that state may be fine against the full one. As Synapse does for a
   * partial-state room, it is then accepted on its own auth events (step 3, already passed) and re-checked once
   * the state is full. True when that applies (and the event is noted for the re-check).
   */
  #partialUnchecked(roomId: string, eventId: string, why: string): boolean {
    if (!this.#hs.partialState.isPartial(roomId)) return false;
    this.#hs.partialState.acceptedUnchecked(roomId, eventId);
    this.#hs.log.info("federation: event accepted on its auth events (partial state)", { roomId, eventId, why });
    return true;
  }

  /**
   * A leave or ban of one of our users whose membership here is an invite or a knock, in a room none of our users is
   * joined to (the inviter rescinding the invite, a knock refused): the spec's out-of-band membership. It must build
   * on that membership (its auth events name it), and an invite may only be withdrawn by a user of the server that
   * sent it.
   */
  async #outOfBand(roomId: string, pdu: Record<string, unknown>): Promise<boolean> {
    const target = pdu.state_key;
    const membership = (pdu.content as Record<string, unknown> | undefined)?.membership;
    if (pdu.type !== "m.room.member" || typeof target !== "string") return false;
    if (membership !== "leave" && membership !== "ban") return false;
    if (parseUserId(target)?.server !== this.#hs.serverName) return false;
    const { events } = this.#hs.store;
    const current = await events.getMembership(roomId, target);
    if (current?.membership !== "invite" && current?.membership !== "knock") return false;
    if (!(pdu.auth_events as string[]).includes(current.eventId)) return false;
    if (current.membership === "invite") {
      const invite = await events.getEvent(current.eventId);
      const by = typeof invite?.pdu.sender === "string" ? parseUserId(invite.pdu.sender)?.server : null;
      if (!by || by !== parseUserId(String(pdu.sender))?.server) return false;
    }
    const joined = await events.getMembers(roomId, "join");
    return !joined.some((m) => parseUserId(m.userId)?.server === this.#hs.serverName);
  }

  /** What the rules read for `ev` from the current state, from the store: the extremities' states (resolved when several). */
  async #currentAuth(roomId: string, version: string, ev: StateResEvent): Promise<Map<StateKey, AuthEvent>> {
    const ext = (await this.#hs.store.dag.getForwardExtremities(roomId)).slice(0, MAX_PREV).map((e) => e.eventId);
    const before = await stateBefore(this.#hs.store, this.graphs, roomId, version, ext);
    if (!before) throw new AmiError("M_UNKNOWN", `The current state of ${roomId} cannot be read`);
    return authFromState(this.graphs.get(roomId), ev, before.ids);
  }

  /**
   * After an accepted event: when the room has several forward extremities, its current state is their states
   * resolved (state resolution v2). persistEvent wrote current_state "latest wins"; the resolved difference is
   * written over it (store.dag.setCurrentState), so clients' state reads and memberships follow the resolution.
   * With one extremity the two agree and nothing is read.
   */
  async #syncCurrentState(roomId: string, version: string): Promise<void> {
    const { store } = this.#hs;
    const ext = (await store.dag.getForwardExtremities(roomId)).slice(0, MAX_PREV).map((e) => e.eventId);
    if (ext.length < 2) return;
    const resolved = await stateBefore(store, this.graphs, roomId, version, ext);
    if (!resolved) return;
    const changed = await store.dag.setCurrentState(roomId, resolved.ids);
    if (changed) invalidateRoomHosts(this.#hs, roomId);
    // The head (whose auth state is read from current_state) was dropped by persist and is re-read after this.
    if (changed > 0) this.stats.stateResolved++;
  }

  async #signatures(pdu: Record<string, unknown>, version: string): Promise<PduCheck> {
    const hit = this.#sigs.get(pdu);
    if (hit) return hit;
    const r = await checkPduSignatures(pdu, version, this.#hs.federation.keys);
    this.#sigs.set(pdu, r);
    return r;
  }

  /** Auth events we lack, asked of the origin's GET /event (signature-checked, stored as outliers). */
  async #fetchMissingAuth(origin: string, roomId: string, version: string, ids: string[]): Promise<void> {
    const missing = await this.#hs.store.dag.getMissingEvents(ids);
    for (const id of missing) {
      const pdu = await this.#fetchEvent(origin, id);
      if (!pdu || pdu.room_id !== roomId) continue;
      let computed: string;
      try {
        computed = eventIdFor(pdu, version);
      } catch {
        continue;
      }
      if (computed !== id) continue;
      const sig = await checkPduSignatures(pdu, version, this.#hs.federation.keys);
      if (!sig.ok) continue;
      // Its own auth is not re-checked here (a deeper fetch): it is kept unrejected as the spec's outlier.
      await this.#hs.store.dag.persistOutliers([outlierOf(id, sig.pdu as Record<string, unknown>, null)]);
    }
  }

  async #fetchEvent(origin: string, eventId: string): Promise<Record<string, unknown> | null> {
    try {
      const res = await this.#hs.federation.client.request<{ pdus?: unknown[] }>(origin, {
        method: "GET",
        path: `/_matrix/federation/v1/event/${encodeURIComponent(eventId)}`,
      });
      const p = res?.pdus?.[0];
      return p && typeof p === "object" ? (p as Record<string, unknown>) : null;
    } catch {
      return null;
    }
  }

  /**
   * Prev events we lack: what the origin's get_missing_events answered (#prefetch: limit MISSING_LIMIT, from our
   * extremities to this event) is checked like any PDU, oldest first (a fetched event whose own prevs are still
   * missing becomes an outlier; no further fetch). Returns what is still missing.
   */
  async #applyMissingPrevs(
    roomId: string,
    version: string,
    head: RoomHead,
    missing: string[],
    persist: (event: Omit<NewEvent, "stream">) => Promise<number>,
    pdus: Record<string, unknown>[],
  ): Promise<string[]> {
    for (const p of pdus) {
      if (p.room_id !== roomId) continue;
      try {
        const sender = typeof p.sender === "string" ? parseUserId(p.sender) : null;
        const id = checkPduFormat(p, version, sender?.server ?? "");
        await this.#checked(p, id, version, head, persist);
      } catch {
        // Each one failing is answered nowhere: the gap stays and the event we were given says so.
      }
    }
    return this.#hs.store.dag.getMissingEvents(missing);
  }
}
