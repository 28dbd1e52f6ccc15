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
 *   re-requesting keys), PDUs up to maxQueuedPdus (the oldest dropped; the room DAG's catch-up fetches them).
 * - the retry state (last success, failures, interval, next retry) is persisted (store.destinations), so a restart
 *   keeps honouring the backoff instead of hammering every dead server at once.
 * Queues live in memory: what is queued is lost when this server restarts (to-device included).
 */
import { randomBytes } from "node:crypto";
import { AmiError } from "../../core/errors.ts";
import type { Logger } from "../../core/logger.ts";
import type { MatrixConfig } from "../config.ts";
import type { DestinationRow, DestinationStore } from "../store/destinations-types.ts";
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

interface Batch {
  txnId: string;
  pdus: Record<string, unknown>[];
  edus: Edu[];
}

class Queue {
  pdus: Record<string, unknown>[] = [];
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
  /** Drop the oldest to-device EDU (queue full). */
  dropOldestToDevice(): void {
    const at = this.edus.findIndex((e) => e?.edu_type === "m.direct_to_device");
    if (at < 0) return;
    this.edus[at] = null;
    this.#holes++;
    this.toDevice--;
  }
}

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

  constructor(d: SenderDeps) {
    this.#d = d;
  }

  get enabled(): boolean {
    return this.#d.cfg.enabled;
  }

  /** Load every persisted destination's retry state (start-up; their queues start empty). */
  async load(): Promise<void> {
    for (const row of await this.#d.store.listDestinations()) {
      if (this.#queues.has(row.destination)) continue;
      const q = new Queue(row.destination);
      q.state = row;
      this.#queues.set(row.destination, q);
    }
  }

  /** Queue PDUs for each destination (never this server). Returns at once; delivery is asynchronous. */
  sendPdus(destinations: Iterable<string>, pdus: Record<string, unknown>[]): void {
    this.#each(destinations, (q) => {
      for (const p of pdus) q.pdus.push(p);
      const over = q.pdus.length - this.#d.cfg.maxQueuedPdus;
      if (over > 0) {
        q.pdus.splice(0, over);
        q.dropped += over;
      }
    });
  }

  /**
   * Queue an EDU for each destination. `key`: EDUs with the same key replace each other while queued (presence per
   * user, receipts per room+type+user, typing per room+user).
   */
  sendEdu(destinations: Iterable<string>, edu: Edu, key: string | null = null): void {
    this.#each(destinations, (q) => {
      // Down (its last transaction failed): typing would be stale by the time it is back.
      if (edu.edu_type === "m.typing" && q.state.failures > 0) {
        q.dropped++;
        return;
      }
      if (edu.edu_type === "m.direct_to_device") {
        if (q.toDevice >= this.#d.cfg.maxQueuedToDevice) {
          q.dropOldestToDevice();
          q.dropped++;
        }
        q.toDevice++;
      }
      q.pushEdu(edu, key === null ? null : `${edu.edu_type}\u0000${key}`);
    });
  }

  /** Forget the backoff of `destination` (it is back, or an operator says so) and send what is queued now. */
  async wake(destination: string): Promise<boolean> {
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
    for (const q of this.#queues.values()) {
      if (q.timer) clearTimeout(q.timer);
      q.abort?.abort();
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
    if (q.inFlight || this.#closed || q.timer) return;
    if (!q.batch && q.pdus.length === 0 && q.edusQueued === 0) return;
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

  async #send(q: Queue): Promise<void> {
    if (!q.batch) {
      q.batch = {
        txnId: `${this.#txnPrefix}.${++this.#txnSeq}`,
        pdus: q.pdus.splice(0, MAX_PDUS_PER_TXN),
        edus: q.takeEdus(MAX_EDUS_PER_TXN),
      };
    }
    const b = q.batch;
    const dest = q.state.destination;
    q.abort = new AbortController();
    try {
      const res = await this.#d.client.request<{ pdus?: Record<string, { error?: string }> }>(dest, {
        method: "PUT",
        path: `/_matrix/federation/v1/send/${encodeURIComponent(b.txnId)}`,
        body: { origin: this.#d.serverName, origin_server_ts: Date.now(), pdus: b.pdus, edus: b.edus },
        signal: q.abort.signal,
      });
      q.batch = null;
      q.sentTxns++;
      for (const [id, r] of Object.entries(res?.pdus ?? {}))
        if (r && typeof r.error === "string")
          this.#d.log.debug("federation: PDU refused", { dest, eventId: id, error: r.error.slice(0, 200) });
      await this.#succeeded(q);
    } catch (e) {
      if (this.#closed) return;
      const status = e instanceof AmiError ? (e.extra.remote_status as number | undefined) : undefined;
      if (status !== undefined && status >= 400 && status < 500 && status !== 429) {
        // Alive, and refusing this transaction: retrying it would be refused again.
        this.#d.log.warn("federation: transaction refused", { dest, txnId: b.txnId, err: String(e) });
        q.batch = null;
        q.dropped += b.pdus.length + b.edus.length;
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
    // Typing EDUs already queued are stale by the time it returns.
    q.dropped += q.dropTyping();
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
