/**
 * DASH's view of the muxed CMAF timeline, one track at a time: each track's init segment, media segments and
 * timing, cut out of the muxed ones on first use (fmp4/split.ts) and cached on the muxed objects (WeakMaps), so
 * they live exactly as long as the segment or init they came from.
 */
import { children, parseInit, type TrackInfo } from "../fmp4/boxes.ts";
import { type TrackSlice, trackInit, trackSegment, trackSlice } from "../fmp4/split.ts";
import type { CmafTimeline, Segment } from "../fmp4/timeline.ts";

const slices = new WeakMap<Segment, Map<number, TrackSlice | null>>();
const files = new WeakMap<Buffer, Map<number, Buffer>>();
const inits = new WeakMap<Buffer, Map<number, Buffer>>();
const initTracks = new WeakMap<Buffer, TrackInfo[]>();

function memo<K extends object, V>(cache: WeakMap<K, Map<number, V>>, key: K, id: number, make: () => V): V {
  let m = cache.get(key);
  if (!m) {
    m = new Map();
    cache.set(key, m);
  }
  if (!m.has(id)) m.set(id, make());
  return m.get(id) as V;
}

/** A complete segment's share of one track (undefined: no samples of it there). */
export function sliceOf(s: Segment, trackId: number): TrackSlice | undefined {
  const data = s.data;
  if (!data) return undefined;
  return memo(slices, s, trackId, () => trackSlice(data, trackId) ?? null) ?? undefined;
}

/** A complete segment as a single-track CMAF segment of `trackId`. */
export function segmentFile(s: Segment, trackId: number): Buffer | undefined {
  const data = s.data;
  if (!data || !sliceOf(s, trackId)) return undefined;
  return memo(files, data, trackId, () => trackSegment(data, trackId));
}

/** The single-track init segment (CMAF header) of `trackId`, from a muxed init. */
export function initFile(init: Buffer, trackId: number): Buffer {
  return memo(inits, init, trackId, () => trackInit(init, trackId));
}

/** The tracks of a muxed init segment (ftyp + moov). */
export function tracksOf(init: Buffer): TrackInfo[] {
  let t = initTracks.get(init);
  if (!t) {
    const moov = children(init, 0, init.length).find((c) => c.type === "moov");
    t = moov ? parseInit(init.subarray(moov.start - 8, moov.end)) : [];
    initTracks.set(init, t);
  }
  return t;
}

/** The complete segment whose `trackId` samples start at `time` (the `$Time$` of a DASH segment URL). */
export function segmentAt(t: CmafTimeline, trackId: number, time: number): Segment | undefined {
  return t.segments.find((s) => s.complete && sliceOf(s, trackId)?.t === time);
}

/**
 * Is `time` the start of a segment of `trackId` still to come: at or after the end of the newest complete one,
 * and within a few segments of it (a player asking at the live edge is held, a made-up time is not).
 */
export function comingAt(t: CmafTimeline, trackId: number, time: number): boolean {
  if (t.ended) return false;
  const ts = t.tracks.find((x) => x.id === trackId)?.timescale;
  const last = t.segments.findLast((s) => s.complete && sliceOf(s, trackId));
  const x = last && sliceOf(last, trackId);
  if (!ts || !x) return false;
  const end = x.t + x.d;
  return time >= end && time <= end + 3 * t.targetDuration * ts;
}
