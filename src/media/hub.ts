/**
 * The one internal stream hub: a path has at most one publisher and any number of readers. Readers get frames
 * through bounded queues; a reader that falls behind loses frames (counted in `framesDiscarded`) and then skips
 * video until the next keyframe so it never decodes a broken GOP. Memory per reader never grows past its bound.
 */
import { EventEmitter } from "node:events";
import { AmiError } from "../core/errors.ts";
import type { Frame } from "./frame.ts";
import { handOut, release, retain } from "./protocols/slab.ts";
import { StreamStats } from "./stats.ts";

export interface PublisherInfo {
  protocol: string;
  remote: string;
  since: number;
}

export interface ReaderInfo {
  id: number;
  protocol: string;
  remote: string;
}

export class Reader {
  readonly info: ReaderInfo;
  framesDiscarded = 0;
  bytesOut = 0;
  /** The queue as a ring (Array.shift moved the whole array on every frame): `#count` frames from `#head`. */
  #ring: (Frame | undefined)[] = new Array(16);
  #head = 0;
  #count = 0;
  readonly #max: number;
  #waitKeyframe = false;
  #wake: (() => void) | undefined;
  #listener: (() => void) | undefined;
  #closed = false;
  readonly #onClose: () => void;
  /** The consumer gives back each frame it takes (`release(f.data)`, slab.ts) once done with its bytes. */
  readonly #releases: boolean;

  constructor(info: ReaderInfo, max: number, onClose: () => void, releases = false) {
    this.info = info;
    this.#max = max;
    this.#onClose = onClose;
    this.#releases = releases;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Called by the stream; never blocks the publisher. */
  push(f: Frame): void {
    if (this.#closed) return;
    if (f.kind === "video" && !f.config && this.#waitKeyframe) {
      if (!f.keyframe) {
        this.framesDiscarded++;
        return;
      }
      this.#waitKeyframe = false;
    }
    if (this.#count >= this.#max && !f.config) {
      this.framesDiscarded++;
      if (f.kind === "video") this.#waitKeyframe = true;
      return;
    }
    // Frame bytes may come from a recycling slab (an RTMP publisher's): a consumer that does not say when it is
    // done with them keeps that slab from ever being reused.
    if (this.#releases) retain(f.data);
    else handOut(f.data);
    if (this.#count === this.#ring.length) this.#grow();
    this.#ring[(this.#head + this.#count) % this.#ring.length] = f;
    this.#count++;
    this.#wake?.();
    this.#listener?.();
  }

  #grow(): void {
    const bigger: (Frame | undefined)[] = new Array(this.#ring.length * 2);
    for (let i = 0; i < this.#count; i++) bigger[i] = this.#ring[(this.#head + i) % this.#ring.length];
    this.#ring = bigger;
    this.#head = 0;
  }

  #shift(): Frame | undefined {
    if (this.#count === 0) return undefined;
    const f = this.#ring[this.#head];
    this.#ring[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#ring.length;
    this.#count--;
    if (f) this.bytesOut += f.data.length;
    return f;
  }

  /** The next queued frame without waiting (undefined: none queued): a consumer drains bursts without a promise
   * per frame, and awaits `next()` only when the queue is empty. */
  poll(): Frame | undefined {
    return this.#shift();
  }

  /** Next frame, or undefined once the reader (or its stream) is closed and the queue is drained. */
  async next(): Promise<Frame | undefined> {
    for (;;) {
      const f = this.#shift();
      if (f) return f;
      if (this.#closed) return undefined;
      await new Promise<void>((r) => {
        this.#wake = r;
      });
      this.#wake = undefined;
    }
  }

  /**
   * Call `fn` whenever a frame is queued or the reader closes, synchronously from the publisher's `write`: a
   * consumer that is itself synchronous (the CMAF packager) then drains with `poll()` and costs no promise and
   * no async resumption per frame, as awaiting `next()` for every frame did. `fn` must not throw.
   */
  listen(fn: () => void): void {
    this.#listener = fn;
  }

  get queued(): number {
    return this.#count;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#wake?.();
    this.#listener?.();
    this.#onClose();
  }
}

/** A live path: its publisher, codec configuration, the current GOP (for late joiners) and readers. */
export class MediaStream extends EventEmitter<{ frame: [Frame]; end: [] }> {
  readonly path: string;
  readonly publisher: PublisherInfo;
  readonly readers = new Set<Reader>();
  /** `readers` as an array for the per-frame loop (no Set iterator per frame); replaced, never changed in place,
   * so a reader added or closed while a frame is being pushed does not shift the loop. */
  #readerList: Reader[] = [];
  /** Synchronous observers of every frame (`observe`): called directly, not through a `frame` event per frame. */
  #observers: ((f: Frame) => void)[] = [];
  readonly stats = new StreamStats();
  videoConfig: Frame | undefined;
  audioConfig: Frame | undefined;
  metadata: Record<string, unknown> = {};
  /** Frames since the last video keyframe, capped, so a new reader starts decodable. */
  #gop: Frame[] = [];
  readonly #gopMax: number;
  readonly #queueMax: number;
  #ended = false;
  endedAt: number | undefined;

  constructor(path: string, publisher: PublisherInfo, opts: { readerQueue: number; gopCache: number }) {
    super();
    this.path = path;
    this.publisher = publisher;
    this.#queueMax = opts.readerQueue;
    this.#gopMax = opts.gopCache;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /**
   * The frame's bytes are the caller's again when this returns: what keeps them says so (slab.ts): the GOP cache
   * and a releasing reader retain them, other readers and kept configs hand them out. Observers (`observe`: the
   * WebRTC video check) and `frame` listeners are synchronous: they must not keep `f.data` past the call.
   */
  write(f: Frame): void {
    if (this.#ended) return;
    this.stats.onFrame(f);
    if (f.config) {
      handOut(f.data);
      if (f.kind === "video") this.videoConfig = f;
      else if (f.kind === "audio") this.audioConfig = f;
    } else if (f.kind === "video" && f.keyframe) {
      this.#dropGop();
      this.#gop.push(f);
      retain(f.data);
    } else if (this.#gop.length > 0 && this.#gop.length < this.#gopMax) {
      this.#gop.push(f);
      retain(f.data);
    } else if (this.#gop.length >= this.#gopMax) {
      this.#dropGop();
    }
    const readers = this.#readerList;
    for (let i = 0; i < readers.length; i++) (readers[i] as Reader).push(f);
    const observers = this.#observers;
    for (let i = 0; i < observers.length; i++) (observers[i] as (f: Frame) => void)(f);
    // The event is for tests and rare watchers: `emit` builds an argument array per call.
    if (this.listenerCount("frame") > 0) this.emit("frame", f);
  }

  /**
   * Call `fn` with every frame written from now on, synchronously (the same rule as `frame` listeners: it must not
   * keep `f.data` past the call). Returns the function that stops it.
   */
  observe(fn: (f: Frame) => void): () => void {
    this.#observers = [...this.#observers, fn];
    return () => {
      this.#observers = this.#observers.filter((o) => o !== fn);
    };
  }

  /** The cached GOP (its keyframe first, then the frames since), for a reader that resends it: bytes handed out. */
  cachedGop(): readonly Frame[] {
    for (const f of this.#gop) handOut(f.data);
    return [...this.#gop];
  }

  /** Empty the GOP cache, giving back its frames' bytes. */
  #dropGop(): void {
    for (const g of this.#gop) release(g.data);
    this.#gop = [];
  }

  /** `releases`: the consumer gives back every frame it takes from the reader (see Reader and slab.ts). */
  addReader(protocol: string, remote: string, opts: { fromKeyframe?: boolean; releases?: boolean } = {}): Reader {
    const r: Reader = new Reader(
      { id: nextReaderId++, protocol, remote },
      this.#queueMax,
      () => {
        this.readers.delete(r);
        this.#readerList = this.#readerList.filter((x) => x !== r);
        this.stats.framesDiscardedClosed += r.framesDiscarded;
        this.stats.bytesOutClosed += r.bytesOut;
      },
      opts.releases,
    );
    if (this.videoConfig) r.push(this.videoConfig);
    if (this.audioConfig) r.push(this.audioConfig);
    if (opts.fromKeyframe !== false) for (const f of this.#gop) r.push(f);
    this.readers.add(r);
    this.#readerList = [...this.#readerList, r];
    if (this.#ended) r.close();
    return r;
  }

  get framesDiscarded(): number {
    let n = this.stats.framesDiscardedClosed;
    for (const r of this.readers) n += r.framesDiscarded;
    return n;
  }

  get bytesOut(): number {
    let n = this.stats.bytesOutClosed;
    for (const r of this.readers) n += r.bytesOut;
    return n;
  }

  /** The publisher is gone: readers drain what they have and then see the end. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.endedAt = Date.now();
    for (const r of [...this.readers]) r.close();
    this.emit("end");
  }
}

let nextReaderId = 1;

export interface HubOptions {
  readerQueue: number;
  gopCache: number;
}

/** Paths -> live streams. `publish` refuses a busy path; `stream-start` lets outputs (HLS...) attach. */
export class Hub extends EventEmitter<{ publish: [MediaStream]; unpublish: [MediaStream] }> {
  readonly #streams = new Map<string, MediaStream>();
  readonly #opts: HubOptions;

  constructor(opts: HubOptions) {
    super();
    this.#opts = opts;
  }

  publish(path: string, publisher: PublisherInfo): MediaStream {
    if (!validPath(path)) throw new AmiError("AMI_INVALID_INPUT", `invalid stream path '${path}'`);
    const busy = this.#streams.get(path);
    if (busy) {
      throw new AmiError(
        "M_FORBIDDEN",
        `path '${path}' already has a publisher (${busy.publisher.protocol} from ${busy.publisher.remote})`,
      );
    }
    const s = new MediaStream(path, publisher, this.#opts);
    this.#streams.set(path, s);
    s.once("end", () => {
      if (this.#streams.get(path) === s) this.#streams.delete(path);
      this.emit("unpublish", s);
    });
    this.emit("publish", s);
    return s;
  }

  get(path: string): MediaStream | undefined {
    return this.#streams.get(path);
  }

  list(): MediaStream[] {
    return [...this.#streams.values()].sort((a, b) => a.path.localeCompare(b.path));
  }

  close(): void {
    for (const s of [...this.#streams.values()]) s.end();
  }
}

/** Paths are `segment(/segment)*` of URL-safe characters: they become URL prefixes of the HTTP outputs. */
export const validPath = (p: string): boolean =>
  /^[A-Za-z0-9_.~-]+(\/[A-Za-z0-9_.~-]+)*$/.test(p) && !p.split("/").some((s) => s === "." || s === "..");
