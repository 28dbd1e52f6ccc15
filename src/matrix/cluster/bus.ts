/**
 * The cross-process bus of a scaled-out homeserver (docs/ARCHITECTURE.md "Homeserver scale-out"): what one process
 * must tell the others — committed stream positions, typing changes, cache invalidations and session revocations,
 * federation work for the worker that sends (cluster/sender-lease.ts), uploads that downloads elsewhere wait for. One process (the
 * embedded default) uses LocalBus, which carries nothing; `matrix.workers` > 1 uses RedisBus (Redis pub/sub).
 *
 * Pub/sub is lossy by nature (a message published while a subscriber is disconnected is gone), so nothing relies
 * on it alone for correctness: stream positions are also polled from PostgreSQL (cluster/positions.ts), typing
 * expires by itself, and caches re-check the database under the room lock. The bus makes things fast, not true.
 */
import { Redis } from "ioredis";
import type { Logger } from "../../core/logger.ts";
import type { WriteTag } from "../stream.ts";

/** One committed stream position and what it was (for the WebSocket hub's selective wake-ups). */
export interface PositionMark {
  pos: number;
  /** A plain room event's room, a tagged write's tag, or null: anything. */
  mark: string | WriteTag | null;
}

export type BusMessage =
  /**
   * Writer `writer` (its slot) ended a turn: it will never commit a position <= `safe` later; `marks` say what the
   * turn's positions were.
   */
  | { t: "pos"; writer: number; safe: number; marks: PositionMark[] }
  /** A typing change made on the sender process (`serial` orders it with the receiver's own changes). */
  | { t: "typing"; roomId: string; userId: string; typing: boolean; timeoutMs: number; serial: number }
  /**
   * Sessions were revoked (`close`: also close what they hold open: WebSockets, long-polls) or a user's flags
   * changed: drop the cached token lookups `rev` names (service/auth.ts Revocation; absent: all of them).
   */
  | { t: "auth"; rev?: unknown; close?: boolean }
  /** A room's DAG changed outside a local send: drop its cached head. */
  | { t: "head"; roomId: string }
  /** A room's joined servers changed here (a member event written, state reset): drop their cached set. */
  | { t: "hosts"; roomId: string }
  /** Federation work for the cluster's sender (federation/sender.ts Handover; checked by its receiver). */
  | { t: "fed"; h: unknown }
  /** An asynchronous upload to this media ID committed: wake the downloads waiting for it (service/media.ts). */
  | { t: "media"; mediaId: string };

/**
 * Small values every worker reads and writes (UIA sessions: a client may send each step of a flow to a different
 * worker). Redis keys with a lifetime; a failure (Redis down) rejects.
 */
export interface SharedValues {
  get(key: string): Promise<string | null>;
  set(key: string, value: string, ttlMs: number): Promise<void>;
  del(key: string): Promise<void>;
}

/** What each process receives: every message another process published (never its own). */
export interface ClusterBus {
  /** This process's ID (messages carry it so a process ignores its own). */
  readonly id: string;
  publish(msg: BusMessage): void;
  /** Register a handler; returns the unsubscribe function. */
  subscribe(fn: (msg: BusMessage) => void): () => void;
  /** Called after a reconnection (messages may have been lost meanwhile): re-read what the bus would have said. */
  onReconnect(fn: () => void): () => void;
  /** Connected right now (metrics, tests). */
  readonly connected: boolean;
  close(): Promise<void>;
}

/** One process: there is nobody to tell. */
export class LocalBus implements ClusterBus {
  readonly id = "local";
  readonly connected = true;
  publish(_msg: BusMessage): void {}
  subscribe(_fn: (msg: BusMessage) => void): () => void {
    return () => {};
  }
  onReconnect(_fn: () => void): () => void {
    return () => {};
  }
  async close(): Promise<void> {}
}

/** Redis pub/sub on one channel per homeserver (its server name), JSON messages `{from, m}`. */
export class RedisBus implements ClusterBus {
  readonly id: string;
  readonly #pub: Redis;
  readonly #sub: Redis;
  readonly #channel: string;
  readonly #handlers = new Set<(msg: BusMessage) => void>();
  readonly #reconnect = new Set<() => void>();
  readonly #log: Logger;
  #everReady = false;
  #subscribed = false;
  #closed = false;

  constructor(url: string, channel: string, id: string, log: Logger) {
    this.id = id;
    this.#channel = channel;
    this.#log = log;
    // Never give up reconnecting (Redis restarted), and never queue publishes while down: a position published late
    // is worse than one not published (the poller covers it), and a queue would grow without bound.
    const opts = {
      lazyConnect: false,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      retryStrategy: (n: number) => Math.min(50 * n, 1000),
    };
    this.#pub = new Redis(url, opts);
    this.#sub = new Redis(url, { ...opts, enableOfflineQueue: true, maxRetriesPerRequest: null });
    for (const c of [this.#pub, this.#sub])
      c.on("error", (e: Error) => {
        if (!this.#closed) this.#log.debug("cluster bus: redis error", { error: e.message });
      });
    this.#sub.on("message", (_ch: string, raw: string) => this.#deliver(raw));
    this.#sub.on("ready", () => {
      // ioredis re-subscribes by itself after a reconnection; each "ready" after the first one means messages
      // may have been lost while it was down.
      if (this.#everReady) {
        this.#log.info("cluster bus: reconnected to redis");
        for (const fn of this.#reconnect) fn();
      }
      this.#everReady = true;
    });
    this.#sub.on("close", () => {
      if (!this.#closed && this.#everReady) this.#log.warn("cluster bus: lost redis");
    });
  }

  /** The command connection (shared values, rate-limit buckets, the federation sender lease). */
  get client(): Redis {
    return this.#pub;
  }

  /** The channel name, also the prefix of this homeserver's keys. */
  get channel(): string {
    return this.#channel;
  }

  get connected(): boolean {
    return this.#sub.status === "ready" && this.#pub.status === "ready";
  }

  /** Resolves once subscribed (start-up waits for it so no early message is missed). */
  /**
   * Subscribes; resolves once subscribed, or rejects after `timeoutMs` (Redis down at start) while the subscription
   * stays queued: it completes when Redis comes up, and ioredis re-subscribes after every reconnection.
   */
  async ready(timeoutMs = 5_000): Promise<void> {
    if (this.#subscribed) return;
    const sub = this.#sub.subscribe(this.#channel).then(() => {
      this.#subscribed = true;
    });
    sub.catch((e) => this.#log.warn("cluster bus: subscribe failed", { error: String(e) }));
    let t: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      t = setTimeout(() => reject(new Error(`redis did not answer within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([sub, late]);
    } finally {
      clearTimeout(t);
    }
  }

  publish(msg: BusMessage): void {
    if (this.#closed || this.#pub.status !== "ready") return;
    this.#pub.publish(this.#channel, JSON.stringify({ from: this.id, m: msg })).catch(() => {});
  }

  subscribe(fn: (msg: BusMessage) => void): () => void {
    this.#handlers.add(fn);
    return () => this.#handlers.delete(fn);
  }

  onReconnect(fn: () => void): () => void {
    this.#reconnect.add(fn);
    return () => this.#reconnect.delete(fn);
  }

  #deliver(raw: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      return;
    }
    // Anything may arrive on the channel ("null" threw here, in ioredis's event, and took the worker down): only an
    // object whose `m` is an object with a string `t` reaches the handlers, which check the fields they use.
    if (typeof parsed !== "object" || parsed === null) return;
    const { from, m } = parsed as { from?: unknown; m?: unknown };
    if (from === this.id || typeof m !== "object" || m === null || Array.isArray(m)) return;
    if (typeof (m as { t?: unknown }).t !== "string") return;
    this.#handle(m as BusMessage);
  }

  #handle(msg: BusMessage): void {
    for (const fn of this.#handlers) {
      try {
        fn(msg);
      } catch (e) {
        this.#log.error("cluster bus handler failed", { error: String(e) });
      }
    }
  }

  /** Values shared by the workers of this homeserver (keys prefixed by the channel name). */
  readonly values: SharedValues = {
    get: (key) => this.#pub.get(`${this.#channel}:${key}`),
    set: async (key, value, ttlMs) => {
      await this.#pub.set(`${this.#channel}:${key}`, value, "PX", ttlMs);
    },
    del: async (key) => {
      await this.#pub.del(`${this.#channel}:${key}`);
    },
  };

  async close(): Promise<void> {
    this.#closed = true;
    this.#pub.disconnect();
    this.#sub.disconnect();
  }
}
