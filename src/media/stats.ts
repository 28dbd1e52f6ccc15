/**
 * Per-stream figures computed by the server from the frames it relays: bitrate and fps over a sliding window,
 * GOP length, resolution and codecs from the sequence headers, bytes in/out, frames discarded.
 */
import { parseAudioSpecificConfig } from "./codecs/aac.ts";
import { parseAvcConfig } from "./codecs/avc.ts";
import type { Frame } from "./hub.ts";

const WINDOW_MS = 5000;

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
  /** [arrival ms, bytes, isVideoFrame] for the sliding window. */
  #window: [number, number, boolean][] = [];
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  onFrame(f: Frame): void {
    this.bytesIn += f.data.length;
    this.framesIn++;
    const t = this.#now();
    this.#window.push([t, f.data.length, f.kind === "video" && !f.config]);
    this.#trim(t);
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
    try {
      if (f.kind === "video") {
        const v = parseAvcConfig(f.data.subarray(5));
        Object.assign(this, { videoCodec: v.codec, width: v.width, height: v.height });
      } else if (f.kind === "audio") {
        const a = parseAudioSpecificConfig(f.data.subarray(2));
        Object.assign(this, { audioCodec: a.codec, audioSampleRate: a.sampleRate, audioChannels: a.channels });
      }
    } catch {
      // A malformed header is the publisher's problem; the figures stay unknown rather than failing the stream.
    }
  }

  #trim(t: number): void {
    let i = 0;
    while (i < this.#window.length && (this.#window[i] as [number, number, boolean])[0] < t - WINDOW_MS) i++;
    if (i > 0) this.#window.splice(0, i);
  }

  figures(): StreamFigures {
    const t = this.#now();
    this.#trim(t);
    const first = this.#window[0]?.[0];
    // Until a full window has passed, rate over the time actually observed (at least 1 s).
    const span = first === undefined ? WINDOW_MS : Math.max(1000, Math.min(WINDOW_MS, t - first));
    let bytes = 0;
    let frames = 0;
    for (const [, n, v] of this.#window) {
      bytes += n;
      if (v) frames++;
    }
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
