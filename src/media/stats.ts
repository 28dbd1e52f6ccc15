/**
 * Per-stream figures computed by the server from the frames it relays: bitrate and fps over a sliding window,
 * GOP length, resolution and codecs from the sequence headers, bytes in/out, frames discarded.
 */
import type { Frame } from "./frame.ts";
import { configInfo } from "./protocols/fmp4/sample-entries.ts";

const WINDOW_MS = 5000;
/** The window is kept as fixed time buckets (no per-frame allocation, nothing to splice out as frames age). */
const BUCKET_MS = 100;
const BUCKETS = WINDOW_MS / BUCKET_MS;

export interface StreamFigures {
  bitrateKbps: number;
  fps: number;
  gopFrames: number | null;
  width: number | null;
  height: number | null;
  videoCodec: string | null;
  audioCodec: string | null;
  audioSampleRate: number | null;
  audioChannels: number | null;
  bytesIn: number;
  framesIn: number;
}

export class StreamStats {
  bytesIn = 0;
  framesIn = 0;
  framesDiscardedClosed = 0;
  bytesOutClosed = 0;
  videoCodec: string | null = null;
  audioCodec: string | null = null;
  width: number | null = null;
  height: number | null = null;
  audioSampleRate: number | null = null;
  audioChannels: number | null = null;
  gopFrames: number | null = null;
  #sinceKey = 0;
  /** Per bucket of the sliding window: which BUCKET_MS slot of time it holds (-1: none), bytes, video frames. */
  readonly #slot = new Float64Array(BUCKETS).fill(-1);
  readonly #bytes = new Float64Array(BUCKETS);
  readonly #frames = new Uint32Array(BUCKETS);
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  onFrame(f: Frame): void {
    this.bytesIn += f.data.length;
    this.framesIn++;
    const slot = Math.floor(this.#now() / BUCKET_MS);
    const i = slot % BUCKETS;
    if (this.#slot[i] !== slot) {
      this.#slot[i] = slot;
      this.#bytes[i] = 0;
      this.#frames[i] = 0;
    }
    this.#bytes[i] += f.data.length;
    if (f.kind === "video" && !f.config) this.#frames[i]++;
    if (f.config) {
      this.#onConfig(f);
      return;
    }
    if (f.kind !== "video") return;
    if (f.keyframe) {
      if (this.#sinceKey > 0) this.gopFrames = this.#sinceKey;
      this.#sinceKey = 0;
    }
    this.#sinceKey++;
  }

  #onConfig(f: Frame): void {
    // A malformed or unknown header is the publisher's problem; the figures stay unknown (configInfo: undefined).
    const i = configInfo(f);
    if (!i) return;
    if (f.kind === "video") Object.assign(this, { videoCodec: i.codec, width: i.width, height: i.height });
    else if (f.kind === "audio")
      Object.assign(this, { audioCodec: i.codec, audioSampleRate: i.sampleRate, audioChannels: i.channels });
  }

  figures(): StreamFigures {
    const t = this.#now();
    const now = Math.floor(t / BUCKET_MS);
    let first: number | undefined;
    let bytes = 0;
    let frames = 0;
    for (let i = 0; i < BUCKETS; i++) {
      const slot = this.#slot[i] as number;
      if (slot < 0 || slot <= now - BUCKETS || slot > now) continue;
      bytes += this.#bytes[i] as number;
      frames += this.#frames[i] as number;
      first = Math.min(first ?? slot, slot);
    }
    // Until a full window has passed, rate over the time actually observed (at least 1 s).
    const span = first === undefined ? WINDOW_MS : Math.max(1000, Math.min(WINDOW_MS, t - first * BUCKET_MS));
    return {
      bitrateKbps: Math.round((bytes * 8) / span),
      fps: Math.round((frames * 1000 * 10) / span) / 10,
      gopFrames: this.gopFrames,
      width: this.width,
      height: this.height,
      videoCodec: this.videoCodec,
      audioCodec: this.audioCodec,
      audioSampleRate: this.audioSampleRate,
      audioChannels: this.audioChannels,
      bytesIn: this.bytesIn,
      framesIn: this.framesIn,
    };
  }
}
