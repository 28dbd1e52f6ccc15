/**
 * Partial-state rooms (MSC3706/MSC3902, Synapse's "faster joins"), the joining side's background resync. A join
 * answered with `members_omitted` (join-out.ts) stores the state it got (no members but the joiner's and the
 * heroes') and marks the room (store.rooms.setPartialState, with the servers to ask); the user can read and send
 * at once. This then fetches the full state at the join: `GET /state_ids?event_id=<join>` of the resident (the
 * state before the join), the events we lack by `/event` (a few) or `/state` (many), each checked as a send_join
 * answer's are (verifyRoomEvents: ID, signatures, auth rules against its own auth events). The entries of that
 * state that the current state lacks (the omitted members, unless an event received since set them) are written
 * as state-only events — new stream positions, so /sync delivers them as state changes in the next sync, and
 * current_state and memberships gain them; the forward extremities are kept. Then the mark is cleared, waiters
 * (/members) are woken, and the events accepted while partial without their state checks are checked against the
 * full state (a failure is logged; as in Synapse, nothing is undone). A server that fails is followed by the next
 * (the resident's `servers_in_room`, then those the join was given, then the hosts of the room's members); when
 * all fail the resync is tried again later (doubling, ≤ 60 s). On start-up every marked room is resumed.
 */
import { AmiError } from "../../core/errors.ts";
import { type AuthEvent, authStateTypesFor, checkAuth, type StateKey, stateKey } from "../events/auth.ts";
import { parseUserId } from "../events/ids.ts";
import type { Homeserver } from "../hs.ts";
import { invalidateRoomHosts } from "./edus-out.ts";
import { verifyRoomEvents } from "./join-out.ts";
import { authEventFrom, outlierOf, stateResEventOf } from "./pdu-in.ts";

type Pdu = Record<string, any>;

/** Missing events fetched one by one (`/event`) up to this many; more: one `/state`. */
const MAX_SINGLE_FETCHES = 20;

export interface PartialStateStats {
  resyncs: number;
  resyncFailures: number;
  /** Events accepted while partial without their state checks (authorised by their own auth events). */
  uncheckedAccepted: number;
  /** Of those, the ones the full state does not authorise (logged). */
  recheckFailed: number;
}

export class PartialStateResync {
  readonly #hs: Homeserver;
  /** Rooms marked partial (mirror of the store's marks, read on every incoming PDU). */
  readonly #partial = new Set<string>();
  /** The servers in each partial room (as the resident named them): our events go to them too meanwhile. */
  readonly #servers = new Map<string, string[]>();
  /** Per room, the stream range of the state-only events its resync wrote (sync sends them as state). */
  readonly #filled = new Map<string, { lo: number; hi: number }>();
  readonly #running = new Map<string, Promise<void>>();
  readonly #waiters = new Map<string, (() => void)[]>();
  /** Per room, the events accepted without their state checks, re-checked once the state is full. */
  readonly #unchecked = new Map<string, string[]>();
  #closed = false;
  #onClose!: () => void;
  readonly #closing = new Promise<void>((r) => {
    this.#onClose = r;
  });
  readonly stats: PartialStateStats = { resyncs: 0, resyncFailures: 0, uncheckedAccepted: 0, recheckFailed: 0 };
  /** Tests: awaited before a resync fetches anything (hold it to observe the partial phase). */
  hold?: (roomId: string) => Promise<void>;

  constructor(hs: Homeserver) {
    this.#hs = hs;
  }

  isPartial(roomId: string): boolean {
    return this.#partial.has(roomId);
  }

  /** Whether the resync of `roomId` wrote state-only events in the stream window (after, upto]. */
  filledWithin(roomId: string, after: number, upto: number): boolean {
    const f = this.#filled.get(roomId);
    return !!f && f.hi > after && f.lo <= upto;
  }

  /** The servers of a partial room (the resident's `servers_in_room`); none once its state is full. */
  serversOf(roomId: string): readonly string[] {
    return this.#servers.get(roomId) ?? [];
  }

  /** Start-up: read the marks and resume each room's resync in the background. */
  async load(): Promise<void> {
    const rows = await this.#hs.store.rooms.listPartialState();
    for (const r of rows) this.start(r.roomId, r.servers);
    if (rows.length) this.#hs.log.info("federation: resuming partial-state resyncs", { rooms: rows.length });
  }

  /** Begin (once) the resync of a room marked partial in the store, with the servers of its mark. */
  start(roomId: string, servers: string[]): void {
    this.#partial.add(roomId);
    this.#servers.set(roomId, servers);
    if (this.#running.has(roomId) || this.#closed) return;
    const run = this.#loop(roomId).finally(() => this.#running.delete(roomId));
    this.#running.set(roomId, run);
  }

  /** An incoming event accepted on its own auth events only, because the room's state is partial. */
  acceptedUnchecked(roomId: string, eventId: string): void {
    this.stats.uncheckedAccepted++;
    const list = this.#unchecked.get(roomId) ?? [];
    if (list.length < 10_000) list.push(eventId);
    this.#unchecked.set(roomId, list);
  }

  /** Resolves once the room's state is complete (at once when it is), or throws after `timeoutMs`. */
  async waitFor(roomId: string, timeoutMs: number): Promise<void> {
    if (!this.#partial.has(roomId)) return;
    let timer: NodeJS.Timeout | undefined;
    const done = new Promise<boolean>((resolve) => {
      const list = this.#waiters.get(roomId) ?? [];
      list.push(() => resolve(true));
      this.#waiters.set(roomId, list);
      timer = setTimeout(() => resolve(false), timeoutMs).unref();
    });
    const ok = await done;
    clearTimeout(timer);
    if (!ok && this.#partial.has(roomId))
      throw new AmiError(
        "M_UNKNOWN",
        `The members of ${roomId} are still being fetched from other servers (a partial-state join); try again shortly`,
        {},
        503,
      );
  }

  /** Stop: no new attempt; running ones end at their next step. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#onClose();
    await Promise.allSettled([...this.#running.values()]);
  }

  async #loop(roomId: string): Promise<void> {
    let delay = 1_000;
    while (!this.#closed) {
      try {
        if (this.hold) await Promise.race([this.hold(roomId), this.#closing]);
        if (this.#closed) return;
        await this.#resync(roomId);
        return;
      } catch (err) {
        this.stats.resyncFailures++;
        this.#hs.log.warn("federation: partial-state resync failed, retrying", {
          roomId,
          inMs: delay,
          err: String(err).slice(0, 300),
        });
      }
      await Promise.race([new Promise((r) => setTimeout(r, delay).unref()), this.#closing]);
      delay = Math.min(delay * 2, 60_000);
    }
  }

  #done(roomId: string): void {
    this.#partial.delete(roomId);
    this.#servers.delete(roomId);
    for (const w of this.#waiters.get(roomId) ?? []) w();
    this.#waiters.delete(roomId);
  }

  async #resync(roomId: string): Promise<void> {
    const hs = this.#hs;
    const { store } = hs;
    const mark = await store.rooms.getPartialState(roomId);
    if (!mark) return this.#done(roomId);
    const room = await store.rooms.getRoom(roomId);
    const [join] = await store.dag.getDagEvents([mark.joinEventId]);
    if (!room || !join || join.stream === null) {
      // The join never got stored (a crash between the mark and the state): nothing to complete.
      hs.log.warn("federation: partial-state mark without its join, dropped", { roomId, join: mark.joinEventId });
      await store.rooms.clearPartialState(roomId);
      return this.#done(roomId);
    }
    const version = room.version;
    const hosts = (await store.events.getMembers(roomId, "join"))
      .map((m) => parseUserId(m.userId)?.server)
      .filter((x): x is string => !!x);
    const servers = [...new Set([...mark.servers, ...hosts])].filter((s) => s !== hs.serverName);
    let last: unknown = new Error("no server to ask");
    for (const server of servers) {
      if (this.#closed) return;
      let full: { state: Map<StateKey, string>; events: Map<string, Pdu>; stored: Map<string, Pdu> };
      try {
        full = await this.#fetchState(server, roomId, version, mark.joinEventId);
      } catch (err) {
        last = err;
        hs.log.info("federation: partial-state resync from a server failed", {
          roomId,
          server,
          err: String(err).slice(0, 200),
        });
        continue;
      }
      await this.#apply(roomId, mark.joinEventId, join.pdu as Pdu, full);
      return;
    }
    throw last;
  }

  /** The full state at our join (the state before it, from `server`, plus the join), checked. */
  async #fetchState(
    server: string,
    roomId: string,
    version: string,
    joinId: string,
  ): Promise<{ state: Map<StateKey, string>; events: Map<string, Pdu>; stored: Map<string, Pdu> }> {
    const hs = this.#hs;
    const q = `${encodeURIComponent(roomId)}?event_id=${encodeURIComponent(joinId)}`;
    const ids = await hs.federation.client.request<{ pdu_ids?: unknown; auth_chain_ids?: unknown }>(server, {
      method: "GET",
      path: `/_matrix/federation/v1/state_ids/${q}`,
    });
    const strings = (v: unknown) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : []);
    const pduIds = strings(ids.pdu_ids);
    const chainIds = strings(ids.auth_chain_ids);
    if (pduIds.length === 0) throw new AmiError("M_UNKNOWN", `${server} gave no state for ${roomId}`, {}, 502);
    const all = [...new Set([...pduIds, ...chainIds])];
    const have = await hs.store.dag.getDagEvents(all);
    const stored = new Map<string, Pdu>();
    for (const e of have) if (e.rejected === null && e.roomId === roomId) stored.set(e.eventId, e.pdu as Pdu);
    const missing = all.filter((id) => !stored.has(id));
    let stateIn: Pdu[] = [];
    let chainIn: Pdu[] = [];
    if (missing.length > 0 && missing.length <= MAX_SINGLE_FETCHES) {
      const got = await Promise.all(
        missing.map((id) =>
          hs.federation.client.request<{ pdus?: unknown }>(server, {
            method: "GET",
            path: `/_matrix/federation/v1/event/${encodeURIComponent(id)}`,
          }),
        ),
      );
      stateIn = got.flatMap((g) => (Array.isArray(g.pdus) ? (g.pdus as Pdu[]) : []));
    } else if (missing.length > 0) {
      const res = await hs.federation.client.request<{ pdus?: unknown; auth_chain?: unknown }>(server, {
        method: "GET",
        path: `/_matrix/federation/v1/state/${q}`,
      });
      stateIn = Array.isArray(res.pdus) ? (res.pdus as Pdu[]) : [];
      chainIn = Array.isArray(res.auth_chain) ? (res.auth_chain as Pdu[]) : [];
    }
    const want = new Set(missing);
    const pick = (l: Pdu[]) => l.filter((p) => !!p && typeof p === "object" && !Array.isArray(p));
    const { events, ok } = await verifyRoomEvents(hs, roomId, version, pick(stateIn), pick(chainIn), stored);
    const state = new Map<StateKey, string>();
    for (const id of pduIds) {
      const p = ok.has(id) ? events.get(id) : stored.get(id);
      if (!p || typeof p.state_key !== "string") continue;
      if (!ok.has(id) && !stored.has(id)) continue;
      state.set(stateKey(p.type, p.state_key), id);
    }
    if (!state.has(stateKey("m.room.create", "")))
      throw new AmiError("M_UNKNOWN", `${server}'s state of ${roomId} has no valid create event`, {}, 502);
    const verified = new Map<string, Pdu>();
    for (const id of ok) if (want.has(id) || !stored.has(id)) verified.set(id, events.get(id) as Pdu);
    return { state, events: verified, stored };
  }

  /** Fill in what the current state lacks, as state-only events; clear the mark; re-check the unchecked events. */
  async #apply(
    roomId: string,
    joinId: string,
    joinPdu: Pdu,
    full: { state: Map<StateKey, string>; events: Map<string, Pdu>; stored: Map<string, Pdu> },
  ): Promise<void> {
    const hs = this.#hs;
    const { store } = hs;
    full.state.set(stateKey("m.room.member", joinPdu.state_key), joinId);
    let added = 0;
    await hs.rooms.withRemote(roomId, async (_head, persist) => {
      const currentState = await store.events.getCurrentState(roomId);
      const current = new Set(currentState.map((e) => stateKey(e.type, e.stateKey ?? "")));
      const toAdd = [...full.state].filter(([k]) => !current.has(k)).map(([, id]) => id);
      const inState = new Set(full.state.values());
      const dag = new Map((await store.dag.getDagEvents([...full.events.keys(), ...toAdd])).map((e) => [e.eventId, e]));
      const outliers = [...full.events]
        .filter(([id]) => !inState.has(id) && !dag.has(id))
        .map(([id, p]) => outlierOf(id, p, null));
      if (outliers.length) await store.dag.persistOutliers(outliers);
      const writes = toAdd
        .filter((id) => (dag.get(id)?.stream ?? null) === null)
        .map((id) => [id, full.events.get(id) ?? full.stored.get(id)] as const)
        .filter((x): x is readonly [string, Pdu] => !!x[1])
        .sort((a, b) => Number(a[1].depth) - Number(b[1].depth));
      const before = (await store.dag.getForwardExtremities(roomId)).map((x) => x.eventId);
      // The last one written carries the whole state as its group (a snapshot of the current state and the other
      // writes, plus its own entry); the single forward extremity is then pointed at it, so the events built on it
      // from now on (local sends, incoming PDUs) have the full state, not the partial one.
      const last = writes.at(-1);
      const resolved = last
        ? [
            ...currentState.map((e) => ({ type: e.type, stateKey: e.stateKey ?? "", eventId: e.eventId })),
            ...writes
              .slice(0, -1)
              .map(([id, p]) => ({ type: p.type as string, stateKey: p.state_key as string, eventId: id })),
            ...toAdd.flatMap((id) => {
              const e = dag.get(id);
              return e && e.stream !== null ? [{ type: e.type, stateKey: e.stateKey ?? "", eventId: id }] : [];
            }),
          ].filter((x) => !(x.type === last[1].type && x.stateKey === last[1].state_key))
        : [];
      const streams = await Promise.all(
        writes.map(([id, p]) =>
          persist({
            ...(id === last?.[0] ? { state: { before: null, beforeChain: 0, resolved } } : {}),
            eventId: id,
            roomId,
            type: p.type,
            stateKey: p.state_key,
            sender: p.sender,
            originServerTs: p.origin_server_ts,
            depth: p.depth,
            pdu: p,
            stateOnly: true,
          }),
        ),
      );
      if (before.length > 0) await store.dag.setForwardExtremities(roomId, before);
      // Entries whose events were stored here already (a room joined again: its old members' events are timeline
      // events, dropped from the current state by the partial join) are put back too.
      const known = toAdd.filter((id) => (dag.get(id)?.stream ?? null) !== null);
      if (known.length > 0) {
        const desired = new Map(currentState.map((e) => [stateKey(e.type, e.stateKey ?? ""), e.eventId] as const));
        for (const [k, id] of full.state) if (!current.has(k)) desired.set(k, id);
        await store.dag.setCurrentState(roomId, desired);
      }
      const headGroup = before.length === 1 ? streams.at(-1) : undefined;
      if (headGroup !== undefined) await store.dag.setEventStateAfter(before[0], headGroup);
      if (streams.length) this.#filled.set(roomId, { lo: Math.min(...streams), hi: Math.max(...streams) });
      await store.rooms.clearPartialState(roomId);
      added = writes.length;
    });
    await hs.rooms.reloadHead(roomId);
    invalidateRoomHosts(hs, roomId);
    this.stats.resyncs++;
    this.#done(roomId);
    hs.log.info("federation: partial-state resync done", { roomId, added, state: full.state.size });
    await this.#recheck(roomId);
  }

  /** The events accepted on their own auth events while partial, against the (now full) current state. */
  async #recheck(roomId: string): Promise<void> {
    const ids = this.#unchecked.get(roomId) ?? [];
    this.#unchecked.delete(roomId);
    if (ids.length === 0) return;
    const hs = this.#hs;
    const version = await hs.rooms.roomVersion(roomId);
    for (const e of await hs.store.dag.getDagEvents(ids)) {
      const ev = stateResEventOf(e);
      const auth = new Map<StateKey, AuthEvent>();
      for (const [t, k] of authStateTypesFor(
        e.pdu as { type: string; sender: string; state_key?: string; content: any },
      )) {
        const a = await hs.store.events.getCurrentStateEvent(roomId, t, k);
        if (a)
          auth.set(stateKey(t, k), authEventFrom(stateResEventOf({ eventId: a.eventId, pdu: a.pdu, rejected: null })));
      }
      // Against the state as it is now (not the event's own state: its group lacks the omitted members too),
      // so a sender who left since also shows here; logged for an operator, nothing undone (as Synapse).
      const why = checkAuth(ev, auth, version);
      if (why) {
        this.stats.recheckFailed++;
        hs.log.warn("federation: an event accepted during the partial state fails against the full state", {
          roomId,
          eventId: e.eventId,
          why,
        });
      }
    }
  }
}
