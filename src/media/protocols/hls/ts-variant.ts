/**
 * The MPEG-TS variant of a path's HLS, for legacy players (MediaMTX's hlsVariant "mpegts"): a version 3 media
 * playlist (no parts, no EXT-X-MAP) listing `ts<msn>.ts` segments that are the fMP4 timeline's segments remuxed
 * to MPEG-TS. Each is made from the CMAF segment's samples (from-cmaf.ts -> TsMuxer) when first asked for, so it
 * has exactly the fMP4 segment's boundaries, numbers, durations and discontinuities, and a path nobody reads as TS
 * costs nothing. One muxer runs through the segments in order (per discontinuity sequence), so continuity
 * counters and the PCR continue from one segment into the next as a player concatenates them.
 */
import type { CmafTimeline, Segment } from "../fmp4/timeline.ts";
import { type CmafTrack, cmafFrames, cmafTracks } from "../mpegts/from-cmaf.ts";
import { TsMuxer } from "../mpegts/mux.ts";

export const TS_PLAYLIST = "ts.m3u8";
export const tsSegmentUri = (msn: number): string => `ts${msn}.ts`;

/** The media sequence number of a `ts<msn>.ts` file name, or undefined. */
export function tsSegmentMsn(file: string): number | undefined {
  const m = /^ts(\d{1,15})\.ts$/.exec(file);
  return m ? Number(m[1]) : undefined;
}

const fix = (n: number) => n.toFixed(5).replace(/0+$/, "").replace(/\.$/, "");

/** RFC 8216 version 3: integer TARGETDURATION, decimal EXTINF, discontinuities; the same window as the fMP4 one. */
export function tsPlaylist(t: CmafTimeline): string {
  const listed = t.listed();
  const first = listed[0];
  const lines = ["#EXTM3U", "#EXT-X-VERSION:3", `#EXT-X-TARGETDURATION:${t.targetDuration}`];
  lines.push(`#EXT-X-MEDIA-SEQUENCE:${first?.msn ?? 0}`);
  if (first?.disc) lines.push(`#EXT-X-DISCONTINUITY-SEQUENCE:${first.disc}`);
  for (const s of listed) {
    if (s.discontinuity && s !== first) lines.push("#EXT-X-DISCONTINUITY");
    if (s === first || s.discontinuity) lines.push(`#EXT-X-PROGRAM-DATE-TIME:${new Date(s.wallclock).toISOString()}`);
    lines.push(`#EXTINF:${fix(s.duration)},`, tsSegmentUri(s.msn));
  }
  if (t.ended) lines.push("#EXT-X-ENDLIST");
  return `${lines.join("\n")}\n`;
}

export class TsVariant {
  readonly #t: CmafTimeline;
  readonly #cache = new Map<number, Buffer>();
  /** Tracks per init segment (one per discontinuity sequence). */
  readonly #tracks = new WeakMap<Buffer, CmafTrack[]>();
  #muxer: TsMuxer | undefined;
  #disc = -1;
  #last = -1;
  /** Bytes of TS made (what the bench and stats read). */
  bytesMade = 0;

  constructor(t: CmafTimeline) {
    this.#t = t;
  }

  /** Segments currently held (the fMP4 window and a few more). */
  get cached(): number {
    return this.#cache.size;
  }

  /**
   * `ts<msn>.ts`, made on first request; undefined when the fMP4 segment is not (or no longer) complete. Made in
   * order: every kept segment after the last one made, up to `msn`, goes through the one running muxer.
   */
  segment(msn: number): Buffer | undefined {
    const hit = this.#cache.get(msn);
    if (hit) return hit;
    const target = this.#t.segment(msn);
    if (!target?.complete || !target.data) return undefined;
    if (msn > this.#last) {
      for (const s of this.#t.segments) {
        if (s.msn <= this.#last || s.msn > msn || !s.complete || !s.data) continue;
        this.#cache.set(s.msn, this.#make(s, false));
        this.#last = s.msn;
      }
    } else {
      // An older segment than any made (a player went back): made on its own, with a fresh muxer.
      this.#cache.set(msn, this.#make(target, true));
    }
    const kept = new Set(this.#t.segments.map((s) => s.msn));
    for (const n of this.#cache.keys()) if (!kept.has(n)) this.#cache.delete(n);
    return this.#cache.get(msn);
  }

  #make(s: Segment, alone: boolean): Buffer {
    const init = this.#t.inits.get(s.disc);
    if (!init || !s.data) return Buffer.alloc(0);
    let tracks = this.#tracks.get(init);
    if (!tracks) {
      tracks = cmafTracks(init);
      this.#tracks.set(init, tracks);
    }
    const main = tracks.find((x) => x.kind === "video") ?? tracks[0];
    if (!main) return Buffer.alloc(0);
    let muxer = this.#muxer;
    if (alone || !muxer || s.disc !== this.#disc) {
      // A new discontinuity sequence (a new publisher, new codec parameters): a new program from scratch.
      muxer = new TsMuxer();
      for (const x of tracks) muxer.frame(x.config);
      if (!alone) {
        this.#muxer = muxer;
        this.#disc = s.disc;
      }
    }
    // The timeline's continuous clock: media time plus what reconnects added.
    const offsetMs = ((s.t - s.tfdt) * 1000) / main.timescale;
    const frames = cmafFrames(s.data, tracks, offsetMs);
    const out: Buffer[] = [];
    const head = frames[0];
    if (!(head?.kind === "video" && head.keyframe)) out.push(muxer.tables(head?.dts ?? 0));
    for (const f of frames) out.push(muxer.frame(f));
    const ts = Buffer.concat(out);
    this.bytesMade += ts.length;
    return ts;
  }
}
