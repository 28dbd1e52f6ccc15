/**
 * The homeserver's view of its sibling processes (docs/ARCHITECTURE.md "Homeserver scale-out"). With one worker
 * (the default, SQLite or PostgreSQL) everything here is a no-op. With `matrix.workers` > 1: every process writes
 * with positions from PgSequencer and publishes its safe position and what its positions were on the bus; the
 * cluster's persisted position (positions.ts) advances this process's stream (waking its long-polls and
 * WebSockets), recomputed on every turn and bus message, and at least every POLL_MS when the bus lost a message;
 * a room's sends hold its PostgreSQL advisory lock.
 */
import { randomBytes } from "node:crypto";
import type { Logger } from "../../core/logger.ts";
import type { MatrixConfig } from "../config.ts";
import type { FederationSender } from "../federation/sender.ts";
import { type Limiter, RateLimiter } from "../http/ratelimit.ts";
import { isPlainEvent } from "../service/sync/fast.ts";
import type { StreamWriter, WriteTag } from "../stream.ts";
import { type BusMessage, type ClusterBus, LocalBus, type PositionMark, RedisBus, type SharedValues } from "./bus.ts";
import { PgRoomLocks, PgSequencer } from "./positions.ts";
import { SharedRateLimiter, SharedWindows } from "./ratelimit.ts";
import { RoomLeases } from "./room-leases.ts";
import { RoomRouter } from "./routing.ts";
import { SenderLease } from "./sender-lease.ts";

/** How often a worker re-reads the committed head from PostgreSQL (covers lost bus messages; Redis down). */
export const POLL_MS = 1000;
/** Connections a worker holds for room locks (sends to this many rooms at once; more wait for one). */
const ROOM_LOCK_CONNECTIONS = 24;

export interface Cluster {
  readonly workers: number;
  readonly bus: ClusterBus;
  /** Values shared by every worker (null with one process: its memory is enough). */
  readonly values: SharedValues | null;
  /** The sequencer for the StreamWriter (null: this process's own counter). */
  readonly sequencer: PgSequencer | null;
  /**
   * Run `fn` while this process alone may write the room; `latest` is the room's highest stored stream position,
   * read under the lock (null with one process: the in-process lock is enough and the cache is always fresh).
   */
  withRoom<T>(roomId: string, fn: (latest: number | null) => Promise<T>): Promise<T>;
  /** A token-bucket limiter named `name` (its buckets shared by every worker when there are several). */
  rateLimiter(name: string, perSecond: number, burst: number): Limiter;
  /** Fixed-window counts shared by every worker (null with one process: the caller counts in memory). */
  readonly windows: SharedWindows | null;
  /**
   * Start federation sending: with one process, `sender` loads its queues and sends; with several, one worker at a
   * time sends (cluster/sender-lease.ts) and the others hand their work to it.
   */
  startFederationSender(sender: FederationSender): Promise<void>;
  /** Rate-limit answers that came from this process's own buckets because Redis did not answer (metrics). */
  readonly rateLimitFallbacks: number;
  /** Whether this process sends federation transactions now. */
  readonly sendsFederation: boolean;
  /** Routes each room's local sends to one writer (null with one process). */
  readonly router: RoomRouter | null;
  /** Connect the stream: publish this process's turns, observe the others'. */
  attach(stream: StreamWriter): void;
  close(): Promise<void>;
}

class SingleProcess implements Cluster {
  readonly workers = 1;
  readonly bus = new LocalBus();
  readonly values = null;
  readonly sequencer = null;
  readonly router = null;
  readonly windows = null;
  withRoom<T>(_roomId: string, fn: (latest: number | null) => Promise<T>): Promise<T> {
    return fn(null);
  }
  rateLimiter(_name: string, perSecond: number, burst: number): Limiter {
    return new RateLimiter(perSecond, burst);
  }
  readonly sendsFederation = true;
  readonly rateLimitFallbacks = 0;
  startFederationSender(sender: FederationSender): Promise<void> {
    return sender.load();
  }
  attach(_stream: StreamWriter): void {}
  async close(): Promise<void> {}
}

class Workers implements Cluster {
  readonly workers: number;
  readonly bus: RedisBus;
  readonly sequencer: PgSequencer;
  readonly router: RoomRouter;
  readonly #locks: PgRoomLocks;
  readonly #leases: RoomLeases;
  readonly #log: Logger;
  get values(): SharedValues {
    return this.bus.values;
  }
  #poll: NodeJS.Timeout | null = null;
  #lease: SenderLease | null = null;
  readonly #limiters: SharedRateLimiter[] = [];
  readonly windows: SharedWindows;

  get rateLimitFallbacks(): number {
    return this.#limiters.reduce((n, l) => n + l.fallbacks, this.windows.fallbacks);
  }
  #offs: Array<() => void> = [];

  constructor(config: MatrixConfig, log: Logger) {
    this.workers = config.workers;
    this.#log = log;
    const id = `${process.pid}-${randomBytes(4).toString("hex")}`;
    this.bus = new RedisBus(config.redis, `ami-streams:matrix:${config.serverName}`, id, log);
    this.windows = new SharedWindows(this.bus.client, `${this.bus.channel}:win`, log);
    this.sequencer = new PgSequencer(config.database, log);
    this.#locks = new PgRoomLocks(config.database, ROOM_LOCK_CONNECTIONS);
    this.#leases = new RoomLeases(config.database, this.#locks, log);
    this.router = new RoomRouter(config.database, () => this.sequencer.slot, log);
  }

  async init(maxStored: number): Promise<void> {
    await this.sequencer.init(maxStored);
    await this.router.start();
    try {
      await this.bus.ready();
    } catch (e) {
      // Redis down at start: run anyway (positions come from the poller) and catch up when it is back.
      this.#log.warn("cluster: redis unavailable at start, polling PostgreSQL until it is back", {
        error: String(e),
      });
    }
  }

  withRoom<T>(roomId: string, fn: (latest: number | null) => Promise<T>): Promise<T> {
    return this.#leases.withRoom(roomId, fn);
  }

  get sendsFederation(): boolean {
    return this.#lease?.held ?? false;
  }

  async startFederationSender(sender: FederationSender): Promise<void> {
    this.#lease = new SenderLease(this.bus, sender, this.#log);
    await this.#lease.start();
  }

  rateLimiter(name: string, perSecond: number, burst: number): Limiter {
    const l = new SharedRateLimiter(this.bus.client, `${this.bus.channel}:rl:${name}`, perSecond, burst, this.#log);
    this.#limiters.push(l);
    return l;
  }

  attach(stream: StreamWriter): void {
    // What each of this process's positions was, until its turn is published.
    const marks = new Map<number, string | WriteTag | null>();
    this.#offs.push(
      stream.onWritten((pos, ev, tag, plainRoom) => {
        if (plainRoom === undefined) marks.set(pos, ev ? (isPlainEvent(ev) ? ev.roomId : null) : tag);
      }),
    );
    this.sequencer.onTurn = (slot, safe, positions) => {
      const out: PositionMark[] = [];
      for (const pos of positions) {
        // A position whose write failed was never reported: it goes out as "anything" (a harmless gap).
        out.push({ pos, mark: marks.get(pos) ?? null });
        marks.delete(pos);
      }
      this.bus.publish({ t: "pos", writer: slot, safe, marks: out });
    };
    this.sequencer.onPersisted = (pos) => stream.observe(pos);
    this.#offs.push(
      this.bus.subscribe((m: BusMessage) => {
        if (m.t !== "pos" || !Number.isSafeInteger(m.safe) || !Number.isSafeInteger(m.writer)) return;
        // Marks first: the WebSocket hub must know what a position was before `current` passes it.
        if (Array.isArray(m.marks)) stream.mark(m.marks);
        this.sequencer.heard(m.writer, m.safe);
      }),
    );
    const catchUp = () => {
      void this.sequencer.head().catch((e) => this.#log.debug("cluster: head poll failed", { error: String(e) }));
      void this.router.refresh().catch((e) => this.#log.debug("cluster: writers poll failed", { error: String(e) }));
    };
    this.#offs.push(this.bus.onReconnect(catchUp));
    this.#poll = setInterval(catchUp, POLL_MS);
    this.#poll.unref();
  }

  async close(): Promise<void> {
    if (this.#poll) clearInterval(this.#poll);
    for (const off of this.#offs) off();
    await this.#lease?.close();
    await this.bus.close();
    await this.router.close();
    await this.#leases.close();
    await this.#locks.close();
    await this.sequencer.close();
  }
}

/** The cluster of `config.workers` processes this one belongs to (one process: a no-op). */
export async function joinCluster(config: MatrixConfig, log: Logger, maxStored: number): Promise<Cluster> {
  if (config.workers <= 1) return new SingleProcess();
  const c = new Workers(config, log);
  try {
    await c.init(maxStored);
  } catch (e) {
    await c.close();
    throw e;
  }
  log.info("cluster: joined", { workers: config.workers, id: c.bus.id });
  return c;
}
