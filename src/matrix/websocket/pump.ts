/**
 * The WebSocket hub's frame pump: one queue for every connection, at most `concurrency` units of work at a
 * time, where a unit is either one connection's full computeSync, or every queued connection whose next frame
 * can come from the fast path (service/sync/fast.ts) together — their per-user reads (unread counts, key counts)
 * are then one store call per kind for all of them. Also the per-connection state the pump works on (Conn).
 */
import type { WebSocket } from "ws";
import { toAmiError } from "../../core/errors.ts";
import type { Homeserver } from "../hs.ts";
import type { Filter } from "../service/filters.ts";
import type { Requester } from "../service/requester.ts";
import { type FastAsk, fastSyncMany } from "../service/sync/fast.ts";
import { computeSync } from "../service/sync/index.ts";
import type { SyncToken } from "../service/sync/token.ts";
import type { SyncResponse } from "../service/sync/types.ts";
import type { StreamChanges } from "./changes.ts";
import { CloseCode, syncFrame, type WsTunables } from "./protocol.ts";

/** One connection's state: deliberately small (memory per idle connection is a target). */
export interface Conn {
  ws: WebSocket;
  ip: string;
  /** Set once authenticated. */
  requester: Requester | null;
  /** Interned: connections with the same filter share the object and its key (the slice cache key). */
  filter: Filter;
  filterKey: string;
  /** The position of the last frame sent (or skipped as empty); null until the first frame. */
  since: SyncToken | null;
  /** `?ack=true`: a frame carrying to-device messages must be acked before computing past it. */
  ackMode: boolean;
  /** next_batch of a frame waiting for its ack (ack mode only). */
  unacked: string | null;
  /** Unparsed query, kept only until authentication. */
  query: URLSearchParams | null;
  openedAt: number;
  /** When the write buffer went over the bound (0 = not blocked). */
  blockedAt: number;
  /** Queued or computing; `dirty` asks for one more pass after the current one. */
  state: 0 | 1 | 2;
  dirty: boolean;
  /** The fast path declined this connection's last pass: the next one computes in full. */
  fullNext: boolean;
  /** To-device messages up to `since` may still be stored (the last frame carried some, or unknown yet). */
  toDeviceHeld: boolean;
  alive: boolean;
  closed: boolean;
}

export const IDLE = 0;
const QUEUED = 1;
const RUNNING = 2;

/** Most connections whose fast frames are computed together (one store call per kind for all of them). */
const MAX_FAST_BATCH = 1024;

interface Snapshot {
  upto: number;
  typingSerial: number;
}

export class FramePump {
  readonly #hs: Homeserver;
  readonly #opts: WsTunables;
  readonly #changes: StreamChanges;
  readonly #close: (c: Conn, code: number, reason: string) => void;
  readonly #queue: Conn[] = [];
  #running = 0;
  #drainSoon = false;
  /** Frames built by the fast path rather than a full computeSync, for tests and benches. */
  fastFrames = 0;
  /** Fast frames sent as a buffer already serialised for another connection, for tests. */
  sharedFrames = 0;
  /** Wake-ups of authenticated connections from outside (each asks for one more pass), for tests. */
  wakeUps = 0;

  constructor(
    hs: Homeserver,
    opts: WsTunables,
    changes: StreamChanges,
    close: (c: Conn, code: number, reason: string) => void,
  ) {
    this.#hs = hs;
    this.#opts = opts;
    this.#changes = changes;
    this.#close = close;
  }

  clear(): void {
    this.#queue.length = 0;
  }

  /** Wake a connection: it computes (once more) when its turn comes. */
  schedule(c: Conn): void {
    if (c.closed || !c.requester) return;
    this.wakeUps++;
    this.#enqueue(c);
  }

  #enqueue(c: Conn): void {
    if (c.closed || !c.requester) return;
    if (c.state !== IDLE) {
      c.dirty = true;
      return;
    }
    c.state = QUEUED;
    this.#queue.push(c);
    // Drain once the current wake-up has queued everyone it wakes (a microtask later), so they batch together.
    if (!this.#drainSoon) {
      this.#drainSoon = true;
      queueMicrotask(() => {
        this.#drainSoon = false;
        this.#drain();
      });
    }
  }

  /** Start units while below the concurrency bound (see the file comment). */
  #drain(): void {
    while (this.#running < this.#opts.concurrency && this.#queue.length > 0) {
      // The fast batch computes at the last classified position (fastFrom holds there; the stream may be a
      // little further already: the next wake-up covers that).
      const snap = { upto: this.#changes.position, typingSerial: this.#hs.typing.serial };
      const fast: Conn[] = [];
      let full: Conn | null = null;
      while (this.#queue.length > 0 && !full && fast.length < MAX_FAST_BATCH) {
        const c = this.#queue.shift()!;
        if (this.#fastCandidate(c, snap)) fast.push(c);
        else full = c;
      }
      if (fast.length) this.#run(fast, this.#fastPass(fast, snap));
      if (full) this.#run([full], this.#pass(full));
    }
  }

  #run(conns: Conn[], work: Promise<void>): void {
    this.#running++;
    for (const c of conns) c.state = RUNNING;
    void work.finally(() => {
      this.#running--;
      for (const c of conns) {
        c.state = IDLE;
        if (c.dirty) {
          c.dirty = false;
          this.#enqueue(c);
        }
      }
      this.#drain();
    });
  }

  #fastCandidate(c: Conn, snap: Snapshot): boolean {
    const b = c.since;
    return (
      !c.fullNext &&
      b !== null &&
      b.stream <= snap.upto &&
      b.typing === snap.typingSerial &&
      this.#changes.fastFrom(b.stream, snap.upto)
    );
  }

  /** Whether the connection should compute now: open, not waiting for an ack, under the buffer bound, behind. */
  #ready(c: Conn, snap: Snapshot): boolean {
    if (c.closed || !c.requester || c.unacked !== null) return false;
    if (c.ws.bufferedAmount > this.#opts.maxBufferedBytes) {
      if (!c.blockedAt) {
        c.blockedAt = Date.now();
        this.#hs.metrics.blockedWebsockets++;
      }
      return false; // resumed by the send callback once the buffer drained
    }
    unblock(this.#hs, c);
    const prev = c.since;
    return !(prev && prev.stream === snap.upto && prev.typing === snap.typingSerial);
  }

  /** Fast frames for many connections at once; one the fast path declines computes in full on its next pass. */
  async #fastPass(conns: Conn[], snap: Snapshot): Promise<void> {
    const asks: { c: Conn; ask: FastAsk }[] = [];
    try {
      for (const c of conns) {
        if (!this.#ready(c, snap)) continue;
        const since = c.since!;
        const slices = await this.#changes.slices(c.requester!.userId, since.stream, snap.upto, c.filter, c.filterKey);
        if (!slices) {
          c.fullNext = c.dirty = true;
          continue;
        }
        const shared = this.#changes.sharedReads(snap.upto);
        const { toDeviceHeld } = c;
        const ask = { requester: c.requester!, since, filter: c.filter, ...snap, slices, toDeviceHeld, shared };
        asks.push({ c, ask });
      }
      const results = await fastSyncMany(
        this.#hs,
        asks.map((a) => a.ask),
      );
      // Connections with the same frame share one serialised buffer (a room's members mostly do).
      const frames = new Map<string, Buffer>();
      results.forEach((out, i) => {
        const { c } = asks[i];
        if (!out) c.fullNext = c.dirty = true;
        else {
          this.fastFrames++;
          let frame: Buffer | undefined;
          if (out.shareKey !== undefined && !out.empty) {
            frame = frames.get(out.shareKey);
            if (frame) this.sharedFrames++;
            else {
              frame = Buffer.from(syncFrame(out.body.next_batch, out.body));
              frames.set(out.shareKey, frame);
            }
          }
          this.#deliver(c, out, snap, true, frame);
        }
      });
    } catch (e) {
      this.#hs.log.error("websocket fast sync failed", { err: String((e as Error)?.stack ?? e) });
      // Nothing was sent: each connection tries again in full.
      for (const c of conns) c.fullNext = c.dirty = true;
    }
  }

  /** Compute (in full) and send one frame if the connection can take it and anything changed since its last frame. */
  async #pass(c: Conn): Promise<void> {
    c.fullNext = false;
    const hs = this.#hs;
    const snap = { upto: hs.stream.current, typingSerial: hs.typing.serial };
    if (!this.#ready(c, snap)) return;
    const prev = c.since;
    // A token from beyond our stream (e.g. a wiped database) cannot be diffed against: start from scratch, as /sync.
    const base = prev && prev.stream <= snap.upto ? prev : null;
    let out: { body: SyncResponse; empty: boolean };
    try {
      const shared = this.#changes.sharedReads(snap.upto);
      out = await computeSync(hs, c.requester!, { since: base, filter: c.filter, fullState: false, ...snap, shared });
    } catch (e) {
      const err = toAmiError(e);
      hs.log.error("websocket sync failed", { user: c.requester!.userId, err: String((e as Error)?.stack ?? e) });
      this.#close(c, CloseCode.internalError, `${err.code}: ${err.message}`);
      return;
    }
    this.#deliver(c, out, snap, base !== null);
  }

  /** Advance the connection to the snapshot and send the frame (an empty incremental one advances silently). */
  #deliver(
    c: Conn,
    out: { body: SyncResponse; empty: boolean },
    snap: Snapshot,
    incremental: boolean,
    frame?: Buffer,
  ): void {
    if (c.closed) return;
    c.since = { stream: snap.upto, typing: snap.typingSerial };
    const toDevice = (out.body.to_device?.events?.length ?? 0) > 0;
    c.toDeviceHeld = toDevice;
    if (out.empty && incremental) return; // nothing new: advance silently (the client's older token stays valid)
    const next = out.body.next_batch as string;
    if (c.ackMode && toDevice) c.unacked = next;
    this.#hs.metrics.websocketFrames++;
    // A text frame either way: a shared buffer is sent as is (`binary: false`), without a copy per connection.
    c.ws.send(frame ?? syncFrame(next, out.body), { binary: false }, () => {
      // The send callback is the drain signal: no per-connection 'drain' listener or timer.
      if (c.blockedAt && c.ws.bufferedAmount <= this.#opts.maxBufferedBytes) this.#enqueue(c);
    });
  }
}

/** The connection is no longer over the buffer bound (or is gone). */
export function unblock(hs: Homeserver, c: Conn): void {
  if (!c.blockedAt) return;
  c.blockedAt = 0;
  hs.metrics.blockedWebsockets--;
}
