/**
 * The in-process CMAF muxer: hub frames (FLV tag bodies) in, an init segment and one moof + mdat fragment per
 * LL-HLS part out. Fragments are cut the way ffmpeg's `-movflags frag_keyframe -frag_duration` did before this
 * replaced it: before every video keyframe and once a fragment holds a part's worth of media, so a keyframe
 * always starts a fragment and CmafTimeline can start segments there. The main track (video, else audio) drives
 * the cuts; the other track's samples go into the fragment that is open when they arrive.
 *
 * Timestamps: RTMP's 32-bit millisecond clock is unwrapped; a jump (backwards, or forwards by more than
 * JUMP_MS) continues the media timeline where it was instead of leaving a hole or going back. A changed codec
 * configuration flushes, asks the sink for a new discontinuity, and writes a new init segment.
 */
import type { Frame } from "../../frame.ts";
import { handOut, release, retain, Slab } from "../slab.ts";
import { fragment, ftyp, moov, type TrackRun } from "./mux.ts";
import { describeUnsupported, type Sample, type TrackCodec, trackCodec } from "./sample-entries.ts";

export interface MuxerSink {
  /** A new init segment (first, or after a configuration change: then `restart` came first). */
  init(ftyp: Buffer, moov: Buffer, tracks: TrackCodec[]): void;
  fragment(moof: Buffer, mdat: Buffer): void;
  /** The configuration changed: what follows is a new discontinuity sequence whose media time starts at 0. */
  restart(): void;
  /** A track that cannot be packaged is left out (the reason), instead of failing the whole stream. */
  skipped(kind: string, reason: string): void;
}

/** A timestamp step larger than this (or any step back) is a discontinuity, not a gap in the media. */
const JUMP_MS = 10_000;
const WRAP = 2 ** 32;
const MAX_PENDING_S = 5;
/** How long (media ms) the first frames wait for the other track's config. */
const PROBE_MS = 1000;

interface Track {
  codec: TrackCodec;
  config: Frame;
  /** Pending samples with their decode time in the track's timescale. */
  pending: { s: Sample; dts: number }[];
  /** Last decode time in ms (timeline clock), for jump detection. */
  lastMs: number | undefined;
  /** Audio: the next sample's time in the timescale (sample counting keeps audio durations exact). */
  next: number | undefined;
  /** Video: the last known sample duration, for the last sample of a stream. */
  lastDuration: number;
}

export class CmafMuxer {
  readonly #sink: MuxerSink;
  readonly #partSeconds: number;
  readonly #configs: { video?: Frame; audio?: Frame } = {};
  #tracks: Track[] = [];
  #sequence = 1;
  /** Unwrapping the 32-bit RTMP clock. */
  #lastRaw: number | undefined;
  #wraps = 0;
  /** Timeline ms = unwrapped dts - base + shift. */
  #base: number | undefined;
  #shift = 0;
  #fragStart: number | undefined;
  readonly #unconfigured = new Set<string>();
  /** Media frames held while waiting for the other track's config. */
  #held: Frame[] = [];
  /** Fragments are carved from slabs: fewer ArrayBuffers (GC pressure), and a segment's parts stay adjacent. */
  readonly #slab: Slab;
  readonly #alloc = (n: number) => this.#slab.take(n);

  /**
   * `recycle`: the sink retains and releases the fragments' bytes (CmafTimeline does), so their slabs can be
   * reused (slab.ts); without it, fragments are left to the GC (a sink that keeps them without saying so).
   */
  constructor(partSeconds: number, sink: MuxerSink, opts: { recycle?: boolean } = {}) {
    this.#partSeconds = partSeconds;
    this.#sink = sink;
    this.#slab = new Slab(4 * 1024 * 1024, { recycle: opts.recycle });
  }

  get tracks(): TrackCodec[] {
    return this.#tracks.map((t) => t.codec);
  }

  /**
   * Feed one hub frame (configs first: the first media frame writes the init segment). The frame's bytes are
   * the caller's again when this returns: a sample waiting for its fragment retains them (slab.ts) until the
   * fragment is written, a config kept is handed out.
   */
  push(f: Frame): void {
    if (f.kind === "data") return;
    if (f.config) {
      const prev = this.#configs[f.kind];
      if (prev?.data.equals(f.data)) return;
      handOut(f.data);
      this.#configs[f.kind] = f;
      // A change after the init segment was written starts a new discontinuity with a new init segment.
      if (this.#tracks.length > 0) {
        this.#flush(true);
        this.#sink.restart();
        this.#tracks = [];
        this.#base = undefined;
        this.#shift = 0;
      }
      return;
    }
    if (this.#tracks.length === 0) {
      // Like ffmpeg's probing: when only one track's config is known, hold media up to PROBE_MS for the other
      // (WHIP ingest learns its Opus config from the first audio packet, after the first video keyframe).
      const other = f.kind === "video" ? "audio" : "video";
      const waiting = !this.#configs[other] && this.#configs[f.kind];
      this.#held.push(f);
      retain(f.data);
      const span = f.dts - (this.#held[0] as Frame).dts;
      if (waiting && span >= 0 && span < PROBE_MS && this.#held.length < 1000) return;
      const held = this.#held;
      this.#held = [];
      const started = this.#start();
      for (const h of held) {
        if (started) this.#media(h);
        release(h.data);
      }
      return;
    }
    this.#media(f);
  }

  /** A media frame once the tracks are set up. */
  #media(f: Frame): void {
    // A loop, not `find` with a closure per frame.
    let track: Track | undefined;
    for (let i = 0; i < this.#tracks.length && !track; i++) {
      const t = this.#tracks[i] as Track;
      if (t.codec.kind === f.kind) track = t;
    }
    if (!track && !this.#configs[f.kind as "video" | "audio"] && !this.#unconfigured.has(f.kind)) {
      // Codecs without a sequence header (MP3, legacy video) never get a track: say so once.
      this.#unconfigured.add(f.kind);
      this.#sink.skipped(f.kind, describeUnsupported(f));
    }
    const sample = track?.codec.sample(f);
    if (!track || !sample) return;
    const ms = this.#clock(f.dts, track);
    const main = this.#tracks[0] as Track;
    const ts = track.codec.timescale;
    if (sample.cts !== 0) sample.cts = Math.round((sample.cts * ts) / 1000);
    let dts: number;
    if (sample.duration > 0) {
      const at = Math.round((ms * ts) / 1000);
      // Keep counting samples unless the clock says we are off by more than 100 ms (a gap or a jump).
      if (track.next === undefined || Math.abs(at - track.next) > ts / 10) track.next = at;
      dts = track.next;
      track.next += sample.duration;
    } else {
      dts = Math.round((ms * ts) / 1000);
      const prev = track.pending.at(-1);
      if (prev) {
        if (dts <= prev.dts) dts = prev.dts + 1;
        prev.s.duration = dts - prev.dts;
        track.lastDuration = prev.s.duration;
      }
    }
    if (track === main) this.#cutBefore(track, sample, dts);
    track.pending.push({ s: sample, dts });
    // Views of the frame (sample-entries.ts): held until the fragment has copied them.
    retain(sample.data);
    // Audio whose video stopped coming must not pile up: past MAX_PENDING_S it goes out on its own.
    if (track !== main && dts - (track.pending[0]?.dts ?? dts) > MAX_PENDING_S * ts) this.#flush(false);
    // Fixed-duration main samples (audio-only streams) end the fragment without waiting for the next one.
    if (track === main && sample.duration > 0 && dts + sample.duration - (this.#fragStart ?? dts) >= this.#limit(track))
      this.#flush(false);
  }

  /** A part's length in the track's timescale: PART-TARGET, which no part may exceed (LL-HLS 4.4.4.9). */
  #limit(track: Track): number {
    return Math.round(this.#partSeconds * track.codec.timescale);
  }

  /**
   * Before a main-track sample at `dts` is queued: end the fragment before a video keyframe, once it reaches the
   * part duration, and never past it. The pending samples end at `dts` (video: the newest one's duration is known
   * only now); when that is past the part duration, the newest video sample opens the next fragment instead, and
   * an audio sample that would overrun it waits for the next one. Only a single sample longer than a part makes a
   * longer fragment.
   */
  #cutBefore(track: Track, sample: Sample, dts: number): void {
    const start = this.#fragStart;
    if (start === undefined || track.pending.length === 0) {
      this.#fragStart ??= dts;
      return;
    }
    const limit = this.#limit(track);
    const video = track.codec.kind === "video";
    if ((video && sample.sync) || dts - start === limit) this.#flush(false);
    else if (dts - start > limit) {
      this.#flush(false, video && track.pending.length > 1);
      // The held sample alone reaches the part duration: a fragment of its own.
      if (this.#fragStart !== undefined && dts - this.#fragStart >= limit) this.#flush(false);
    } else if (!video && dts + sample.duration - start > limit) this.#flush(false);
    this.#fragStart ??= dts;
  }

  /** The stream ended: write what is pending. */
  end(): void {
    const held = this.#held;
    this.#held = [];
    if (held.length > 0 && this.#tracks.length === 0 && this.#start()) for (const h of held) this.#media(h);
    this.#flush(true);
    this.#slab.close();
  }

  /** Build the tracks from the configs seen (video first); false when no track can be packaged. */
  #start(): boolean {
    const tracks: Track[] = [];
    for (const kind of ["video", "audio"] as const) {
      const config = this.#configs[kind];
      if (!config) continue;
      try {
        tracks.push({
          codec: trackCodec(config),
          config,
          pending: [],
          lastMs: undefined,
          next: undefined,
          lastDuration: 0,
        });
      } catch (e) {
        this.#sink.skipped(kind, (e as Error).message);
      }
    }
    if (tracks.length === 0) return false;
    this.#tracks = tracks;
    this.#fragStart = undefined;
    const codecs = tracks.map((t) => t.codec);
    this.#sink.init(ftyp(codecs.length === 1), moov(codecs), codecs);
    return true;
  }

  /** A frame's time in ms on the muxer's timeline: unwrapped, from 0, continuous across jumps. */
  #clock(raw: number, track: Track): number {
    if (this.#lastRaw !== undefined && raw < this.#lastRaw - WRAP / 2) this.#wraps++;
    else if (this.#lastRaw !== undefined && raw > this.#lastRaw + WRAP / 2 && this.#wraps > 0) this.#wraps--;
    this.#lastRaw = raw;
    const ext = raw + this.#wraps * WRAP;
    this.#base ??= ext;
    let ms = ext - this.#base + this.#shift;
    const last = track.lastMs;
    if (last !== undefined && (ms < last - 1000 || ms > last + JUMP_MS)) {
      // Continue one typical step after the last frame.
      const step =
        track.codec.kind === "video"
          ? Math.max(1, Math.round((track.lastDuration * 1000) / track.codec.timescale) || 33)
          : 20;
      this.#shift += last + step - ms;
      ms = last + step;
      // The other track's pending audio clock restarts from the new timestamps.
      for (const t of this.#tracks) if (t !== track) t.next = undefined;
    }
    track.lastMs = ms;
    return ms;
  }

  /**
   * Write the pending samples as one fragment. `final`: the last video sample's duration is a guess. `holdLast`:
   * the main track's newest sample stays for the next fragment (this one would be too long with it).
   */
  #flush(final: boolean, holdLast = false): void {
    const runs: TrackRun[] = [];
    for (const t of this.#tracks) {
      let samples = t.pending;
      if (holdLast && t === this.#tracks[0]) samples = samples.slice(0, -1);
      else if (t.codec.kind === "video" && !final) {
        // The newest sample's duration is unknown until the next one arrives: it opens the next fragment.
        samples = samples.filter((p) => p.s.duration > 0);
      } else if (t.codec.kind === "video") {
        for (const p of samples)
          if (p.s.duration === 0) p.s.duration = t.lastDuration || Math.round(t.codec.timescale / 30);
      }
      t.pending = t.pending.slice(samples.length);
      runs.push({
        baseTime: samples[0]?.dts ?? 0,
        samples: samples.map((p) => p.s),
        withCts: t.codec.kind === "video",
      });
    }
    if (runs.every((r) => r.samples.length === 0)) return;
    const { moof, mdat } = fragment(this.#sequence++, runs, this.#alloc);
    for (let r = 0; r < runs.length; r++) {
      const samples = (runs[r] as TrackRun).samples;
      for (let k = 0; k < samples.length; k++) release((samples[k] as Sample).data);
    }
    this.#sink.fragment(moof, mdat);
    const mainPending = this.#tracks[0]?.pending[0];
    this.#fragStart = mainPending?.dts;
  }
}
