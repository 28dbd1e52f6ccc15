/**
 * The homeserver's view of its sibling processes (docs/ARCHITECTURE.md "Homeserver scale-out"). With one worker
 * (the default, SQLite or PostgreSQL) everything here is a no-op. With `matrix.workers` > 1: stream positions come
 * from PgSequencer and are published on the bus; positions other processes committed advance this process's
 * stream (waking its long-polls and WebSockets), from the bus at once or from PostgreSQL within POLL_MS when the
 * bus lost a message; a room's sends hold its PostgreSQL advisory lock.
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
import { SharedRateLimiter } from "./ratelimit.ts";
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
  /**
   * Start federation sending: with one process, `sender` loads its queues and sends; with several, one worker at a
   * time sends (cluster/sender-lease.ts) and the others hand their work to it.
   */
  startFederationSender(sender: FederationSender): Promise<void>;
  /** Rate-limit answers that came from this process's own buckets because Redis did not answer (metrics). */
  readonly rateLimitFallbacks: number;
  /** Whether this process sends federation transactions now. */
  readonly sendsFederation: boolean;
  /** Connect the stream: publish this process's turns, observe the others'. */
  attach(stream: StreamWriter): void;
  close(): Promise<void>;
}

class SingleProcess implements Cluster {
  readonly workers = 1;
  readonly bus = new LocalBus();
  readonly values = null;
  readonly sequencer = null;
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
  readonly #locks: PgRoomLocks;
  readonly #log: Logger;
  get values(): SharedValues {
    return this.bus.values;
  }
  #poll: NodeJS.Timeout | null = null;
  #lease: SenderLease | null = null;
  readonly #limiters: SharedRateLimiter[] = [];

  get rateLimitFallbacks(): number {
    return this.#limiters.reduce((n, l) => n + l.fallbacks, 0);
  }
  #offs: Array<() => void> = [];

  constructor(config: MatrixConfig, log: Logger) {
    this.workers = config.workers;
    this.#log = log;
    const id = `${process.pid}-${randomBytes(4).toString("hex")}`;
    this.bus = new RedisBus(config.redis, `ami-streams:matrix:${config.serverName}`, id, log);
    this.sequencer = new PgSequencer(config.database, log);
    this.#locks = new PgRoomLocks(config.database, ROOM_LOCK_CONNECTIONS);
  }

  async init(maxStored: number): Promise<void> {
    await this.sequencer.init(maxStored);
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
    return this.#locks.withRoom(roomId, fn);
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
    const marks = new Map<number, string | WriteTag | null>();
    this.#offs.push(
      stream.onWritten((pos, ev, tag) => {
        marks.set(pos, ev ? (isPlainEvent(ev) ? ev.roomId : null) : tag);
      }),
    );
    this.sequencer.onTurn = (last) => {
      const out: PositionMark[] = [];
      for (const [pos, mark] of marks)
        if (pos <= last) {
          out.push({ pos, mark });
          marks.delete(pos);
        }
      this.bus.publish({ t: "pos", upto: last, marks: out });
    };
    this.#offs.push(
      this.bus.subscribe((m: BusMessage) => {
        if (m.t === "pos" && Number.isSafeInteger(m.upto))
          stream.observe(m.upto, Array.isArray(m.marks) ? m.marks : []);
      }),
    );
    const catchUp = () =>
      void this.sequencer.head().then(
        (h) => stream.observe(h),
        (e) => this.#log.debug("cluster: head poll failed", { error: String(e) }),
      );
    this.#offs.push(this.bus.onReconnect(catchUp));
    this.#poll = setInterval(catchUp, POLL_MS);
    this.#poll.unref();
  }

  async close(): Promise<void> {
    if (this.#poll) clearInterval(this.#poll);
    for (const off of this.#offs) off();
    await this.#lease?.close();
    await this.bus.close();
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
