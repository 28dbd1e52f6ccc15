/**
 * A player's reader of a path, across publishers: when the publisher leaves, it waits up to the end grace for the
 * next one on the same path and goes on reading from it, so an RTMP or HTTP-FLV player keeps its connection
 * through a publisher's reconnect (as HLS players keep their playlist). Output timestamps start at 0 and never go
 * backwards: each publisher's frames are rebased to continue just after the last one sent. The new publisher's
 * sequence headers come first (a changed codec configuration reaches the player as new headers), then video from
 * its first keyframe. Memory stays the hub reader's bound: a slow consumer loses frames there, never here.
 */

import { nextStream } from "./follow.ts";
import type { Frame } from "./frame.ts";
import type { Hub, MediaStream, Reader } from "./hub.ts";

/** Gap put between the last frame of one publisher and the first of the next (about a video frame). */
const JOIN_GAP_MS = 40;

export interface PathReaderOptions {
  protocol: string;
  remote: string;
  /** How long to wait for a returning publisher after the current one ends (media.endGraceSeconds); 0: no wait. */
  graceMs: number;
}

export interface TimedFrame {
  frame: Frame;
  /** Output timestamp (ms): rebased, continuous across publishers. */
  ts: number;
}

export class PathReader {
  #stream: MediaStream;
  #reader: Reader;
  readonly #hub: Hub;
  readonly #o: PathReaderOptions;
  readonly #stop = new AbortController();
  /** Output time of the current publisher's first media frame, and that frame's dts. */
  #offset = 0;
  #base: number | undefined;
  #last = 0;
  /** After a publisher change: video waits for a keyframe (the new reader may not start at one). */
  #needKey = false;
  /** Publishers read so far (1: no reconnect yet). */
  publishers = 1;
  #listener: (() => void) | undefined;

  constructor(hub: Hub, first: MediaStream, o: PathReaderOptions) {
    this.#hub = hub;
    this.#o = o;
    this.#stream = first;
    this.#reader = first.addReader(o.protocol, o.remote);
  }

  /** The stream being read now (its metadata and codec headers). */
  get stream(): MediaStream {
    return this.#stream;
  }

  get closed(): boolean {
    return this.#stop.signal.aborted;
  }

  /** The next frame with its output time; undefined once closed, or when no publisher came back within the grace. */
  async next(): Promise<TimedFrame | undefined> {
    for (;;) {
      const f = this.#reader.poll() ?? (await this.#reader.next());
      if (this.closed) return undefined;
      if (!f) {
        if (!(await this.#follow())) return undefined;
        continue;
      }
      const ts = this.#time(f);
      if (ts !== undefined) return { frame: f, ts };
    }
  }

  /**
   * A queued frame with its output time, without waiting: undefined when none is queued now (then `next()` waits,
   * or `listen` says when to poll again). A consumer that drains with `poll` costs no promise per frame.
   */
  poll(): TimedFrame | undefined {
    for (;;) {
      const f = this.#reader.poll();
      if (!f || this.closed) return undefined;
      const ts = this.#time(f);
      if (ts !== undefined) return { frame: f, ts };
    }
  }

  /** The current publisher's frames are all read and it has left: `next()` waits for the next publisher. */
  get atEnd(): boolean {
    return this.#reader.closed && this.#reader.queued === 0;
  }

  /**
   * Call `fn` whenever a frame is queued or the hub reader closes, synchronously from the publisher's `write`
   * (Reader.listen; kept across a publisher change). `fn` must not throw.
   */
  listen(fn: () => void): void {
    this.#listener = fn;
    this.#reader.listen(fn);
  }

  /** Stop reading (the player left): the hub reader closes and a pending wait for a publisher ends. */
  close(): void {
    if (this.closed) return;
    this.#stop.abort();
    this.#reader.close();
  }

  /** The publisher left: wait for the next one within what is left of the grace, and read from it. */
  async #follow(): Promise<boolean> {
    const left = this.#o.graceMs - (Date.now() - (this.#stream.endedAt ?? Date.now()));
    if (left <= 0) return false;
    const signal = AbortSignal.any([this.#stop.signal, AbortSignal.timeout(left)]);
    const s = await nextStream(this.#hub, this.#stream.path, signal);
    if (!s || this.closed) return false;
    this.#stream = s;
    this.#reader = s.addReader(this.#o.protocol, this.#o.remote);
    if (this.#listener) this.#reader.listen(this.#listener);
    this.#offset = this.#last + JOIN_GAP_MS;
    this.#base = undefined;
    this.#needKey = true;
    this.publishers++;
    return true;
  }

  /** Output time of `f`, or undefined when it is skipped (data frames; video before the new publisher's keyframe). */
  #time(f: Frame): number | undefined {
    if (f.kind === "data") return undefined;
    // Codec headers carry no media time: they go out at the current time, so nothing steps back.
    if (f.config) return this.#last;
    if (f.kind === "video" && this.#needKey) {
      if (!f.keyframe) return undefined;
      this.#needKey = false;
    }
    if (this.#base === undefined) this.#base = f.dts;
    const ts = Math.max(this.#offset, this.#offset + f.dts - this.#base);
    if (ts > this.#last) this.#last = ts;
    return ts;
  }
}
