/**
 * Outgoing federation transactions (spec server-server "Transactions"): one queue per destination server,
 * drained as `PUT /_matrix/federation/v1/send/{txnId}` with at most 50 PDUs and 100 EDUs, one transaction in
 * flight per destination. Each destination runs on its own: a dead server's timeouts never hold up another's.
 *
 * Failure policy (learning from Synapse's retry storms, where every queued item and every new event re-tried a
 * dead server, and its queues grew without bound):
 * - a failed transaction (network error, timeout, 5xx, 429) backs the destination off: retryInitialMs, doubling
 *   per failure with ±20 % jitter (so many dead servers do not retry in lock-step), capped at retryMaxMs. New items
 *   for it are queued, never a reason to try early; a request *from* it (it is back) wakes it (wake()).
 * - the same transaction (same txnId, same content) is resent on retry, so the receiver's dedupe applies it once.
 * - a 4xx answer other than 429 means the server is alive and refuses this transaction: it is dropped, no backoff.
 * - while backing off the queue is bounded: typing EDUs are not queued at all (stale in seconds), presence and
 *   receipts are coalesced (the newest per user / per room+type+user replaces the older), to-device EDUs are kept
 *   up to maxQueuedToDevice (oldest dropped past it: they are end-to-end messages whose loss clients recover from by
 *   re-requesting keys), PDUs up to maxQueuedPdus (the oldest dropped; the destination's catch-up resends them).
 * - the retry state (last success, failures, interval, next retry) is persisted (store.destinations), so a restart
 *   keeps honouring the backoff instead of hammering every dead server at once.
 *
 * Durability (what survives a restart of this server, or a queue that overflowed):
 * - to-device EDUs are written to the destination's outbox (store.destinations) before they are queued (the
 *   client's request is answered after that), deleted once a transaction carrying them is accepted (or refused, or
 *   dropped past the bound), and queued again at start-up.
 * - PDUs are not copied: per (destination, room) the store keeps the stream position of the newest local event
 *   queued for it and of the newest one delivered (Synapse's destination_rooms and
 *   last_successful_stream_ordering); "delivered" is the highest position below which every event handed to the
 *   destination went (an older event still queued, or dropped and not resent yet, holds it back, so events handed
 *   over out of stream order are never skipped; edus-out.ts hands a room's events over in stream order). A destination owed events at start-up, or whose queue dropped PDUs, is
 *   "catching up": before its in-memory queue, it is sent the owed local events read back from the timeline, in
 *   stream order, 50 per transaction, until none is owed (in a room where one of its users is joined now, every
 *   local event after the delivered position is owed: the owed position is written after the event is persisted,
 *   and a crash between the two must not lose it) (`prepareOwed`: what the destination's users could not see
 *   goes redacted, as backfill sends it). These writes run in order through one chain, off the
 *   send path (a delivery never waits for them); a restart at worst sends an event twice, which receivers ignore.
 */
import { randomBytes, randomInt } from "node:crypto";
import { AmiError } from "../../core/errors.ts";
import type { Logger } from "../../core/logger.ts";
import type { MatrixConfig } from "../config.ts";
import type { DestinationRow, DestinationStore, OwedPdu } from "../store/destinations-types.ts";
import type { FederationClient } from "./client.ts";

export const MAX_PDUS_PER_TXN = 50;
export const MAX_EDUS_PER_TXN = 100;
/** A healthy destination's last success is written at most this often (a write per transaction would cost latency). */
const SUCCESS_PERSIST_MS = 60_000;

export interface Edu {
  edu_type: string;
  content: Record<string, unknown>;
}

export interface DestinationStatus {
  destination: string;
  queuedPdus: number;
  queuedEdus: number;
  /** Of the queued EDUs (not counting the transaction in flight), the to-device ones (bounded: maxQueuedToDevice). */
  queuedToDevice: number;
  inFlight: boolean;
  lastSuccessTs: number | null;
  failures: number;
  /** Not tried before this (ms); null when not backing off. */
  backoffUntil: number | null;
  /** Items dropped since start because its queue was full (or typing while it was down). */
  dropped: number;
  sentTxns: number;
}

/** A queued PDU; `stream` is its position here when it is a local event (what the catch-up tracks). */
interface QueuedPdu {
  pdu: Record<string, unknown>;
  roomId: string;
  stream: number | null;
}

interface Batch {
  txnId: string;
  pdus: QueuedPdu[];
  edus: Edu[];
  /** Its PDUs were read back by the catch-up (copies of them may still be queued in memory). */
  caughtUp: boolean;
}

class Queue {
  pdus: QueuedPdu[] = [];
  /** Owed events are to be read from the store and sent before the in-memory PDUs (start-up, or PDUs dropped). */
  catchUp = false;
  /** EDUs in order; a coalescing key maps to the index of the one that a newer EDU replaces. */
  edus: (Edu | null)[] = [];
  readonly keyed = new Map<string, number>();
  toDevice = 0;
  /** The transaction being sent or waiting for its retry (resent unchanged). */
  batch: Batch | null = null;
  inFlight = false;
  timer: NodeJS.Timeout | null = null;
  abort: AbortController | null = null;
  dropped = 0;
  sentTxns = 0;
  lastPersistTs = 0;
  state: DestinationRow;
  constructor(destination: string) {
    this.state = { destination, lastSuccessTs: null, failures: 0, retryIntervalMs: 0, nextRetryTs: 0 };
  }
  get edusQueued(): number {
    return this.edus.length - this.#holes;
  }
  #holes = 0;
  pushEdu(e: Edu, key: string | null): void {
    if (key !== null) {
      const at = this.keyed.get(key);
      // (It may be gone already: typing dropped while the server is down.)
      if (at !== undefined && this.edus[at] !== null) {
        this.edus[at] = null;
        this.#holes++;
      }
      this.keyed.set(key, this.edus.length);
    }
    this.edus.push(e);
  }
  /** Up to `n` EDUs off the front, in order. */
  takeEdus(n: number): Edu[] {
    const out: Edu[] = [];
    let i = 0;
    for (; i < this.edus.length && out.length < n; i++) {
      const e = this.edus[i];
      if (e === null) this.#holes--;
      else {
        out.push(e);
        if (e.edu_type === "m.direct_to_device") this.toDevice--;
      }
    }
    this.edus.splice(0, i);
    // Indices moved: rebuild the coalescing map (it is small: one entry per user or room+type+user).
    for (const [k, at] of this.keyed) {
      if (at < i) this.keyed.delete(k);
      else this.keyed.set(k, at - i);
    }
    return out;
  }
  /** Drop every queued typing EDU; returns how many. */
  dropTyping(): number {
    let n = 0;
    for (let i = 0; i < this.edus.length; i++)
      if (this.edus[i]?.edu_type === "m.typing") {
        this.edus[i] = null;
        this.#holes++;
        n++;
      }
    return n;
  }
  /** Drop the queued to-device EDUs `expired` says so of; returns them. */
  dropToDeviceWhere(expired: (e: Edu) => boolean): Edu[] {
    const out: Edu[] = [];
    for (let i = 0; i < this.edus.length; i++) {
      const e = this.edus[i];
      if (e?.edu_type !== "m.direct_to_device" || !expired(e)) continue;
      this.edus[i] = null;
      this.#holes++;
      this.toDevice--;
      out.push(e);
    }
    return out;
  }
  /** To-device EDUs queued or in the transaction in flight. */
  get holdsToDevice(): boolean {
    return this.toDevice > 0 || (this.batch?.edus.some((e) => e.edu_type === "m.direct_to_device") ?? false);
  }
  /** Drop the oldest to-device EDU (queue full); returns it. */
  dropOldestToDevice(): Edu | null {
    const at = this.edus.findIndex((e) => e?.edu_type === "m.direct_to_device");
    if (at < 0) return null;
    const e = this.edus[at];
    this.edus[at] = null;
    this.#holes++;
    this.toDevice--;
    return e;
  }
}

/**
 * What a worker that does not send (the cluster's sender is another worker: cluster/sender-lease.ts) hands to the
 * one that does, over the bus. PDUs and to-device EDUs are already durable (owed positions, outbox) when handed
 * over, so one lost on the way is caught up from the store; other EDUs are ephemeral.
 */
export type Handover =
  | { k: "pdus"; dests: string[]; pdus: Record<string, unknown>[]; stream?: number }
  | { k: "edu"; dests: string[]; edu: Edu; key: string | null }
  | { k: "todevice"; dest: string; edu: Edu; seq: number }
  | { k: "heard"; dest: string }
  | { k: "wake"; dest: string };

export interface SenderDeps {
  serverName: string;
  cfg: MatrixConfig["federation"];
  client: FederationClient;
  store: DestinationStore;
  log: Logger;
}

export class FederationSender {
  readonly #d: SenderDeps;
  readonly #queues = new Map<string, Queue>();
  /** Destinations whose persisted state is being loaded (first use since start). */
  readonly #loading = new Map<string, Promise<Queue>>();
  readonly #txnPrefix = `${Date.now().toString(36)}${randomBytes(3).toString("hex")}`;
  #txnSeq = 0;
  #closed = false;
  /**
   * Set while another worker is the cluster's sender: what would be queued here goes to it instead (nothing is
   * sent from this process). null: this process sends (one process, or the lease holder).
   */
  #handover: ((h: Handover) => void) | null = null;
  /**
   * Whether this process may send right now (the cluster lease is still valid here): checked before each
   * transaction, so a worker that lost its lease without hearing of it yet (a long pause) does not send.
   */
  mayLead: () => boolean = () => true;
  /** When each destination's "heard from" was last handed over (follower only). */
  readonly #heardSent = new Map<string, number>();
  /** The outbox position of each to-device EDU that is in the store. */
  readonly #outboxSeq = new WeakMap<Edu, number>();
  /**
   * Counts shared by every worker (set by the homeserver with workers: cluster/ratelimit.ts SharedWindows): `n`
   * against `key`'s `limit` per `windowMs`; 0 counted, > 0 refused (ms until the window ends), null: Redis did not
   * answer, count here.
   */
  sharedCount: ((key: string, n: number, limit: number, windowMs: number) => Promise<number | null>) | null = null;
  /** Per local user, remote to-device EDUs admitted in the current minute (admitToDevice without sharedCount). */
  readonly #toDeviceRate = new Map<string, { since: number; n: number }>();
  #lastSeq = 0;
  /**
   * What the catch-up sends of the owed events it read back (set by the homeserver: room-reads.ts owedPdusFor, the
   * destination's history visibility); null sends them as stored.
   */
  prepareOwed: ((destination: string, owed: OwedPdu[]) => Promise<OwedPdu[]>) | null = null;
  /** Store writes of the queues (owed and delivered positions, outbox deletions), applied in order. */
  #writes: Promise<void> = Promise.resolve();
  /**
   * Per destination and room, the positions of local events handed to sendPdus and not yet delivered (queued, in
   * flight, or waiting for a resend), and the lowest one dropped from a full queue that the catch-up has not resent
   * yet: the delivered position written never passes them (a later event delivered first must not skip them).
   */
  readonly #undelivered = new Map<string, Map<string, { queued: Set<number>; dropped: number | null }>>();

  constructor(d: SenderDeps) {
    this.#d = d;
  }

  get enabled(): boolean {
    return this.#d.cfg.enabled;
  }

  /**
   * Start-up: every persisted destination's retry state, its to-device outbox queued again, and the destinations
   * owed PDUs set catching up; those with something to send are started (honouring their backoff).
   */
  async load(): Promise<void> {
    const { store } = this.#d;
    for (const row of await store.listDestinations()) {
      if (this.#queues.has(row.destination)) continue;
      const q = new Queue(row.destination);
      q.state = row;
      this.#queues.set(row.destination, q);
    }
    const touched = new Set<Queue>();
    for (const r of await store.listOutbox()) {
      const q = await this.#queue(r.destination);
      const edu = r.edu as unknown as Edu;
      this.#lastSeq = Math.max(this.#lastSeq, r.seq);
      this.#outboxSeq.set(edu, r.seq);
      this.#pushToDevice(q, edu);
      touched.add(q);
    }
    for (const dest of await store.destinationsOwed(this.#d.serverName)) {
      if (dest === this.#d.serverName) continue;
      const q = await this.#queue(dest);
      q.catchUp = true;
      touched.add(q);
    }
    for (const q of touched) {
      this.#expireToDevice(q);
      this.#kick(q);
    }
  }

  /**
   * Queue PDUs for each destination (never this server). Returns at once; delivery is asynchronous. `stream`: the
   * position of the (one) local event here, recorded as owed to each destination so a restart catches it up.
   */
  sendPdus(destinations: Iterable<string>, pdus: Record<string, unknown>[], stream?: number): void {
    const dests = [...new Set(destinations)].filter((d) => d !== this.#d.serverName);
    if (!this.#d.cfg.enabled || dests.length === 0) return;
    if (stream !== undefined && pdus.length === 1 && typeof pdus[0].room_id === "string") {
      const roomId = pdus[0].room_id;
      this.#write("owed PDUs", () => this.#d.store.recordOwedPdus(dests, roomId, stream));
    }
    if (this.#handover) {
      // After the owed write (queued above): the sender may read it back if this message is lost.
      const hand = this.#handover;
      void this.#writes.then(() => hand({ k: "pdus", dests, pdus, ...(stream !== undefined ? { stream } : {}) }));
      return;
    }
    this.#queuePdus(dests, pdus, stream);
  }

  #queuePdus(dests: string[], pdus: Record<string, unknown>[], stream: number | undefined): void {
    const items = pdus.map((pdu) => ({
      pdu,
      roomId: String(pdu.room_id),
      stream: stream !== undefined && pdus.length === 1 ? stream : null,
    }));
    // Known as undelivered now, synchronously (the queue of a destination seen first may still be loading).
    for (const d of dests) for (const p of items) if (p.stream !== null) this.#room(d, p.roomId).queued.add(p.stream);
    this.#each(dests, (q) => {
      for (const p of items) q.pdus.push(p);
      const over = q.pdus.length - this.#d.cfg.maxQueuedPdus;
      if (over > 0) {
        for (const p of q.pdus.splice(0, over)) {
          if (p.stream === null) continue;
          const u = this.#room(q.state.destination, p.roomId);
          u.queued.delete(p.stream);
          if (u.dropped === null || p.stream < u.dropped) u.dropped = p.stream;
        }
        q.dropped += over;
        // What was dropped is still owed: the catch-up reads it back from the timeline.
        q.catchUp = true;
      }
    });
  }

  /**
   * May local user `sender` queue to-device EDUs for `servers` now? Throws 429 M_LIMIT_EXCEEDED when a server not
   * holding to-device EDUs yet would be one more than maxToDeviceDestinations, or past toDevicePerSenderPerMinute
   * (counted per server). Called before the client's messages are written, so a refusal writes none. With workers
   * both are cluster-wide: a worker that does not send has no queues, so it counts the destinations holding outbox
   * rows in the store, and the per-user count is a window in Redis (`sharedCount`; this process's own count while
   * Redis does not answer).
   */
  async admitToDevice(sender: string, servers: string[]): Promise<void> {
    const remote = servers.filter((s) => s !== this.#d.serverName);
    if (!this.#d.cfg.enabled || remote.length === 0) return;
    const max = this.#d.cfg.maxToDeviceDestinations;
    let holding = 0;
    let fresh = 0;
    if (this.#handover) {
      const held = await this.#d.store.outboxHolders(remote, max);
      holding = held.count;
      fresh = new Set(remote.filter((s) => !held.holding.includes(s))).size;
    } else {
      for (const q of this.#queues.values()) if (q.holdsToDevice) holding++;
      fresh = remote.filter((s) => !this.#queues.get(s)?.holdsToDevice).length;
    }
    if (fresh > 0 && holding + fresh > max) {
      this.#d.log.warn("federation: to-device refused, too many destinations hold queued to-device EDUs", {
        sender,
        holding,
      });
      throw new AmiError("M_LIMIT_EXCEEDED", `Too many servers have to-device messages waiting (at most ${max})`);
    }
    const limit = this.#d.cfg.toDevicePerSenderPerMinute;
    const tooMany = (retryMs: number) =>
      new AmiError("M_LIMIT_EXCEEDED", "Too many to-device messages for other servers: try again in a minute", {
        retry_after_ms: Math.max(1, retryMs),
      });
    const shared = this.sharedCount ? await this.sharedCount(`todevice:${sender}`, remote.length, limit, 60_000) : null;
    if (shared !== null) {
      if (shared > 0) throw tooMany(shared);
      return;
    }
    const now = Date.now();
    let r = this.#toDeviceRate.get(sender);
    if (!r || now - r.since >= 60_000) {
      r = { since: now, n: 0 };
      this.#toDeviceRate.set(sender, r);
      if (this.#toDeviceRate.size > 10_000)
        for (const [u, v] of this.#toDeviceRate) if (now - v.since >= 60_000) this.#toDeviceRate.delete(u);
    }
    if (r.n + remote.length > limit) throw tooMany(60_000 - (now - r.since));
    r.n += remote.length;
  }

  /**
   * Drop the to-device EDUs of `q` queued more than toDeviceExpiryMs ago while the destination failed ever since
   * (no success after they were queued), and their outbox rows.
   */
  #expireToDevice(q: Queue): void {
    if (q.state.failures === 0 || q.toDevice === 0) return;
    const before = Date.now() - this.#d.cfg.toDeviceExpiryMs;
    const lastOk = q.state.lastSuccessTs ?? 0;
    const gone = q.dropToDeviceWhere((e) => {
      const seq = this.#outboxSeq.get(e);
      if (seq === undefined) return false;
      const queuedTs = seq / 1000;
      return queuedTs < before && lastOk < queuedTs;
    });
    if (gone.length === 0) return;
    q.dropped += gone.length;
    this.#d.log.warn("federation: to-device EDUs expired (destination failing since they were queued)", {
      dest: q.state.destination,
      count: gone.length,
    });
    this.#forgetOutbox(q.state.destination, gone);
  }

  /**
   * A to-device EDU for `destination`: written to its outbox, then queued (so once this resolves, a restart does
   * not lose it). Past maxQueuedToDevice queued the oldest is dropped (and deleted).
   */
  async sendToDevice(destination: string, edu: Edu): Promise<void> {
    if (!this.#d.cfg.enabled || this.#closed || destination === this.#d.serverName) return;
    // Microseconds-ish and unique per destination: with workers, two processes may write the same millisecond, so
    // the sub-millisecond part starts at random rather than at 0 (seq / 1000 stays the time it was queued).
    const seq = Math.max(this.#lastSeq + 1, Date.now() * 1000 + randomInt(1000));
    this.#lastSeq = seq;
    await this.#d.store.addOutboxEdu({ destination, seq, edu: edu as unknown as Record<string, unknown> });
    if (this.#handover) {
      this.#handover({ k: "todevice", dest: destination, edu, seq });
      return;
    }
    this.#outboxSeq.set(edu, seq);
    this.#each([destination], (q) => this.#pushToDevice(q, edu));
  }

  #pushToDevice(q: Queue, edu: Edu): void {
    if (q.toDevice >= this.#d.cfg.maxQueuedToDevice) {
      const old = q.dropOldestToDevice();
      if (old) this.#forgetOutbox(q.state.destination, [old]);
      q.dropped++;
    }
    q.toDevice++;
    q.pushEdu(edu, null);
  }

  #room(dest: string, roomId: string): { queued: Set<number>; dropped: number | null } {
    let rooms = this.#undelivered.get(dest);
    if (!rooms) {
      rooms = new Map();
      this.#undelivered.set(dest, rooms);
    }
    let u = rooms.get(roomId);
    if (!u) {
      u = { queued: new Set(), dropped: null };
      rooms.set(roomId, u);
    }
    return u;
  }

  /** Delete the outbox rows of these EDUs (delivered or dropped). */
  #forgetOutbox(destination: string, edus: Edu[]): void {
    const seqs: number[] = [];
    for (const e of edus) {
      const seq = this.#outboxSeq.get(e);
      if (seq !== undefined) seqs.push(seq);
    }
    if (seqs.length > 0) this.#write("outbox", () => this.#d.store.deleteOutboxEdus(destination, seqs));
  }

  /** Run a store write after the ones before it; a failure is logged (the catch-up or a resend covers it). */
  #write(what: string, fn: () => Promise<void>): void {
    this.#writes = this.#writes
      .then(fn)
      .catch((e) => this.#d.log.warn(`federation: cannot save ${what}`, { err: String(e).slice(0, 300) }));
  }

  /** Resolves once every store write queued so far is done (before the store closes). */
  drained(): Promise<void> {
    return this.#writes;
  }

  /**
   * Queue an EDU for each destination. `key`: EDUs with the same key replace each other while queued (presence per
   * user, receipts per room+type+user, typing per room+user).
   */
  sendEdu(destinations: Iterable<string>, edu: Edu, key: string | null = null): void {
    if (edu.edu_type === "m.direct_to_device") {
      for (const d of new Set(destinations))
        this.sendToDevice(d, edu).catch((e) =>
          this.#d.log.warn("federation: cannot queue a to-device EDU", { dest: d, err: String(e).slice(0, 300) }),
        );
      return;
    }
    if (this.#handover) {
      const dests = [...new Set(destinations)].filter((d) => d !== this.#d.serverName);
      if (dests.length > 0 && this.#d.cfg.enabled) this.#handover({ k: "edu", dests, edu, key });
      return;
    }
    this.#each(destinations, (q) => {
      // Down (its last transaction failed): typing would be stale by the time it is back.
      if (edu.edu_type === "m.typing" && q.state.failures > 0) {
        q.dropped++;
        return;
      }
      q.pushEdu(edu, key === null ? null : `${edu.edu_type}\u0000${key}`);
    });
  }

  /** Forget the backoff of `destination` (it is back, or an operator says so) and send what is queued now. */
  async wake(destination: string): Promise<boolean> {
    if (this.#handover) {
      // The sender forgets the backoff; the answer is what the store says now.
      const row = await this.#d.store.getDestination(destination);
      this.#handover({ k: "wake", dest: destination });
      return !!row && (row.nextRetryTs > 0 || row.failures > 0);
    }
    const q = await this.#queue(destination);
    const was = q.state.nextRetryTs > 0 || q.state.failures > 0;
    if (q.timer) clearTimeout(q.timer);
    q.timer = null;
    q.state = { ...q.state, failures: 0, retryIntervalMs: 0, nextRetryTs: 0 };
    if (was) await this.#persist(q);
    this.#kick(q);
    return was;
  }

  /** Wake `destination` if it is backing off (cheap when it is not): called when a request from it arrives. */
  heardFrom(destination: string): void {
    if (this.#handover) {
      // Every incoming transaction calls this: tell the sender at most every few seconds per destination.
      const now = Date.now();
      if ((this.#heardSent.get(destination) ?? 0) > now - 5_000) return;
      if (this.#heardSent.size > 10_000) this.#heardSent.clear();
      this.#heardSent.set(destination, now);
      this.#handover({ k: "heard", dest: destination });
      return;
    }
    const q = this.#queues.get(destination);
    if (q && q.state.nextRetryTs > Date.now()) void this.wake(destination).catch(() => {});
  }

  /** Every destination known (in memory since start, or persisted with retry state), by name. */
  async status(): Promise<DestinationStatus[]> {
    const rows = await this.#d.store.listDestinations();
    const byName = new Map(rows.map((r) => [r.destination, r]));
    for (const [name, q] of this.#queues) byName.set(name, q.state);
    const now = Date.now();
    return [...byName.values()]
      .sort((a, b) => (a.destination < b.destination ? -1 : 1))
      .map((s) => {
        const q = this.#queues.get(s.destination);
        return {
          destination: s.destination,
          queuedPdus: (q?.pdus.length ?? 0) + (q?.batch?.pdus.length ?? 0),
          queuedEdus: (q?.edusQueued ?? 0) + (q?.batch?.edus.length ?? 0),
          queuedToDevice: q?.toDevice ?? 0,
          inFlight: q?.inFlight ?? false,
          lastSuccessTs: s.lastSuccessTs,
          failures: s.failures,
          backoffUntil: s.nextRetryTs > now ? s.nextRetryTs : null,
          dropped: q?.dropped ?? 0,
          sentTxns: q?.sentTxns ?? 0,
        };
      });
  }

  /** In-memory figures only (synchronous, for /metrics and /_ami/stats). */
  snapshot(): DestinationStatus[] {
    const now = Date.now();
    return [...this.#queues.values()].map((q) => ({
      destination: q.state.destination,
      queuedPdus: q.pdus.length + (q.batch?.pdus.length ?? 0),
      queuedEdus: q.edusQueued + (q.batch?.edus.length ?? 0),
      queuedToDevice: q.toDevice,
      inFlight: q.inFlight,
      lastSuccessTs: q.state.lastSuccessTs,
      failures: q.state.failures,
      backoffUntil: q.state.nextRetryTs > now ? q.state.nextRetryTs : null,
      dropped: q.dropped,
      sentTxns: q.sentTxns,
    }));
  }

  close(): void {
    this.#closed = true;
    this.#stop();
  }

  #stop(): void {
    for (const q of this.#queues.values()) {
      if (q.timer) clearTimeout(q.timer);
      q.timer = null;
      q.abort?.abort();
    }
  }

  /** Whether this process sends (false while another worker is the cluster's sender). */
  get leading(): boolean {
    return this.#handover === null && !this.#closed;
  }

  /**
   * Another worker sends from now on: stop (the transaction in flight is aborted; the new sender resends what it
   * had, receivers dedupe by event ID) and hand everything over. The queues are forgotten: the store has what
   * matters, and this process reloads it should it lead again.
   */
  follow(handover: (h: Handover) => void): void {
    this.#handover = handover;
    this.#stop();
    this.#queues.clear();
    this.#loading.clear();
    this.#undelivered.clear();
  }

  /** This process sends from now on: load what is owed and queued from the store (load()) and go. */
  async lead(): Promise<void> {
    if (this.#closed) return;
    this.#handover = null;
    this.#queues.clear();
    this.#undelivered.clear();
    await this.load();
  }

  /** What another worker handed over (only the sender acts on it). */
  receive(h: Handover): void {
    if (this.#handover || this.#closed || !this.#d.cfg.enabled) return;
    if (h.k === "pdus") this.#queuePdus(h.dests, h.pdus, h.stream);
    else if (h.k === "edu") this.sendEdu(h.dests, h.edu, h.key);
    else if (h.k === "todevice") {
      // The bus is ours, but a malformed handover must not poison the sequence (NaN would stick).
      if (!Number.isSafeInteger(h.seq) || typeof h.dest !== "string" || typeof h.edu !== "object" || h.edu === null)
        return;
      this.#lastSeq = Math.max(this.#lastSeq, h.seq);
      this.#outboxSeq.set(h.edu, h.seq);
      this.#each([h.dest], (q) => this.#pushToDevice(q, h.edu));
    } else if (h.k === "heard") this.heardFrom(h.dest);
    else if (h.k === "wake") void this.wake(h.dest).catch(() => {});
  }

  /** Handovers may have been lost (the bus reconnected): catch every owed destination up from the store. */
  async recheck(): Promise<void> {
    if (this.#handover || this.#closed) return;
    for (const dest of await this.#d.store.destinationsOwed(this.#d.serverName)) {
      if (dest === this.#d.serverName) continue;
      const q = await this.#queue(dest);
      q.catchUp = true;
      this.#kick(q);
    }
  }

  #each(destinations: Iterable<string>, add: (q: Queue) => void): void {
    if (!this.#d.cfg.enabled || this.#closed) return;
    for (const dest of new Set(destinations)) {
      if (dest === this.#d.serverName) continue;
      const q = this.#queues.get(dest);
      if (q) {
        add(q);
        this.#kick(q);
      } else
        void this.#queue(dest)
          .then((q2) => {
            add(q2);
            this.#kick(q2);
          })
          .catch((e) => this.#d.log.warn("federation: cannot load destination state", { dest, err: String(e) }));
    }
  }

  async #queue(dest: string): Promise<Queue> {
    const have = this.#queues.get(dest);
    if (have) return have;
    let p = this.#loading.get(dest);
    if (!p) {
      p = (async () => {
        const q = new Queue(dest);
        const row = await this.#d.store.getDestination(dest);
        if (row) q.state = row;
        this.#queues.set(dest, q);
        this.#loading.delete(dest);
        return q;
      })();
      this.#loading.set(dest, p);
    }
    return p;
  }

  /** Start a transaction if none is in flight, something is queued, and the destination is not backing off. */
  #kick(q: Queue): void {
    if (q.inFlight || this.#closed || this.#handover || q.timer) return;
    // The lease lapsed here (its loss is being noticed): another worker may be sending already. lead() restarts.
    if (!this.mayLead()) return;
    if (!q.batch && !q.catchUp && q.pdus.length === 0 && q.edusQueued === 0) return;
    const wait = q.state.nextRetryTs - Date.now();
    if (wait > 0) {
      q.timer = setTimeout(() => {
        q.timer = null;
        this.#kick(q);
      }, wait);
      q.timer.unref();
      return;
    }
    q.inFlight = true;
    void this.#send(q).finally(() => {
      q.inFlight = false;
      this.#kick(q);
    });
  }

  /** The oldest events owed to `q`'s destination (none: its catch-up is over). */
  async #owed(q: Queue): Promise<QueuedPdu[]> {
    // Positions written before this read count (a delivery recorded just now is not sent again).
    await this.#writes;
    let owed: OwedPdu[] = [];
    try {
      owed = await this.#d.store.owedPdus(q.state.destination, this.#d.serverName, MAX_PDUS_PER_TXN);
      if (owed.length > 0 && this.prepareOwed) owed = await this.prepareOwed(q.state.destination, owed);
    } catch (e) {
      this.#d.log.warn("federation: cannot read owed PDUs", { dest: q.state.destination, err: String(e) });
    }
    if (owed.length === 0) {
      q.catchUp = false;
      // Every dropped event was resent: nothing below the queued ones holds the delivered position back.
      for (const u of this.#undelivered.get(q.state.destination)?.values() ?? []) u.dropped = null;
    }
    return owed.map((o) => ({ pdu: o.pdu, roomId: o.roomId, stream: o.stream }));
  }

  /**
   * Record a delivered (or refused) batch: owed positions move on, its outbox EDUs go. The delivered position of a
   * room is the highest below which every event handed to this destination was delivered: an older event still
   * queued (handed over out of stream order) or dropped and not yet resent holds it back, so a restart's catch-up
   * never skips it.
   */
  #delivered(q: Queue, b: Batch): void {
    const dest = q.state.destination;
    const upTo = new Map<string, number>();
    for (const p of b.pdus)
      if (p.stream !== null && p.stream > (upTo.get(p.roomId) ?? -1)) upTo.set(p.roomId, p.stream);
    if (upTo.size > 0) {
      // The catch-up sent what may also be queued in memory: not again.
      if (b.caughtUp && q.pdus.length > 0)
        q.pdus = q.pdus.filter((p) => p.stream === null || p.stream > (upTo.get(p.roomId) ?? -1));
      const rooms: { roomId: string; stream: number }[] = [];
      for (const [roomId, top] of upTo) {
        const u = this.#room(dest, roomId);
        for (const p of b.pdus) if (p.roomId === roomId && p.stream !== null) u.queued.delete(p.stream);
        if (b.caughtUp) {
          // The catch-up reads in stream order: every owed event up to `top` went (copies queued are filtered).
          for (const s of u.queued) if (s <= top) u.queued.delete(s);
          // Dropped ones above `top` may remain until the catch-up is over.
          if (u.dropped !== null && u.dropped <= top) u.dropped = top + 1;
        }
        let low = u.dropped ?? Number.POSITIVE_INFINITY;
        for (const s of u.queued) if (s < low) low = s;
        const stream = Math.min(top, low - 1);
        if (u.queued.size === 0 && u.dropped === null) this.#undelivered.get(dest)?.delete(roomId);
        rooms.push({ roomId, stream });
      }
      this.#write("delivered PDUs", () => this.#d.store.markPdusSent(dest, rooms));
    }
    this.#forgetOutbox(dest, b.edus);
  }

  async #send(q: Queue): Promise<void> {
    if (!q.batch) {
      const pdus = q.catchUp ? await this.#owed(q) : [];
      const caughtUp = pdus.length > 0;
      if (!caughtUp) pdus.push(...q.pdus.splice(0, MAX_PDUS_PER_TXN));
      const edus = q.takeEdus(MAX_EDUS_PER_TXN);
      if (pdus.length === 0 && edus.length === 0) return;
      q.batch = { txnId: `${this.#txnPrefix}.${++this.#txnSeq}`, pdus, edus, caughtUp };
    }
    const b = q.batch;
    const dest = q.state.destination;
    q.abort = new AbortController();
    try {
      const res = await this.#d.client.request<{ pdus?: Record<string, { error?: string }> }>(dest, {
        method: "PUT",
        path: `/_matrix/federation/v1/send/${encodeURIComponent(b.txnId)}`,
        body: {
          origin: this.#d.serverName,
          origin_server_ts: Date.now(),
          pdus: b.pdus.map((p) => p.pdu),
          edus: b.edus,
        },
        signal: q.abort.signal,
      });
      q.batch = null;
      q.sentTxns++;
      this.#delivered(q, b);
      for (const [id, r] of Object.entries(res?.pdus ?? {}))
        if (r && typeof r.error === "string")
          this.#d.log.debug("federation: PDU refused", { dest, eventId: id, error: r.error.slice(0, 200) });
      await this.#succeeded(q);
    } catch (e) {
      // Aborted because this process stopped sending: not the destination's failure.
      if (this.#closed || this.#handover) return;
      const status = e instanceof AmiError ? (e.extra.remote_status as number | undefined) : undefined;
      if (status !== undefined && status >= 400 && status < 500 && status !== 429) {
        // Alive, and refusing this transaction: retrying it would be refused again.
        this.#d.log.warn("federation: transaction refused", { dest, txnId: b.txnId, err: String(e) });
        q.batch = null;
        q.dropped += b.pdus.length + b.edus.length;
        this.#delivered(q, b);
        await this.#succeeded(q);
        return;
      }
      await this.#failed(q, e);
    } finally {
      q.abort = null;
    }
  }

  async #succeeded(q: Queue): Promise<void> {
    const now = Date.now();
    const healing = q.state.failures > 0 || q.state.nextRetryTs > 0;
    q.state = { ...q.state, lastSuccessTs: now, failures: 0, retryIntervalMs: 0, nextRetryTs: 0 };
    if (healing || now - q.lastPersistTs >= SUCCESS_PERSIST_MS) await this.#persist(q);
  }

  async #failed(q: Queue, e: unknown): Promise<void> {
    const { retryInitialMs, retryMaxMs } = this.#d.cfg;
    const interval = Math.min(retryMaxMs, q.state.retryIntervalMs ? q.state.retryIntervalMs * 2 : retryInitialMs);
    const jittered = Math.min(retryMaxMs, Math.round(interval * (0.8 + Math.random() * 0.4)));
    q.state = {
      ...q.state,
      failures: q.state.failures + 1,
      retryIntervalMs: interval,
      nextRetryTs: Date.now() + jittered,
    };
    // Typing EDUs already queued are stale by the time it returns; to-device ones after toDeviceExpiryMs.
    q.dropped += q.dropTyping();
    this.#expireToDevice(q);
    this.#d.log.info("federation: transaction failed, backing off", {
      dest: q.state.destination,
      failures: q.state.failures,
      retryInMs: jittered,
      err: String(e).slice(0, 300),
    });
    await this.#persist(q);
  }

  async #persist(q: Queue): Promise<void> {
    q.lastPersistTs = Date.now();
    await this.#d.store
      .putDestination(q.state)
      .catch((e) => this.#d.log.warn("federation: cannot save destination state", { err: String(e) }));
  }
}
