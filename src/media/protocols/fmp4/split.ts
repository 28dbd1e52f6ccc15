/**
 * CMAF track files from the muxed timeline: DASH (DASH-IF IOP, CMAF) wants one track per Representation, each
 * with its own init segment and single-track moof + mdat fragments, while HLS keeps serving the muxed A/V
 * fragments the timeline stores. Rather than a second muxer and a second copy of every stream, a track's init
 * and segments are cut out of the muxed ones when a DASH player first asks for them, and kept only as long as
 * the muxed segment itself (WeakMap on the segment's bytes): streams nobody watches over DASH cost nothing.
 */
import { Slab } from "../slab.ts";
import { type Child, children } from "./boxes.ts";
import { ftyp } from "./mux.ts";
import { box } from "./write.ts";

/** One track's share of a muxed segment: what the MPD's SegmentTimeline and @bandwidth need. */
export interface TrackSlice {
  /** tfdt of the track's first fragment in the segment (its own timescale). */
  t: number;
  /** Sum of the track's sample durations in the segment. */
  d: number;
  bytes: number;
  samples: number;
}

interface TrafRef {
  traf: Child;
  /** Offset (in the moof buffer) of the trun's data_offset field. */
  dataOffsetAt: number;
  /** Media bytes of the track: from data_offset (relative to the moof start), `size` long. */
  dataOffset: number;
  size: number;
  baseTime: number;
  duration: number;
  samples: number;
}

/** The traf of `trackId` in a moof of `b` (our muxer's layout: default-base-is-moof, one trun). */
function trafOf(b: Buffer, moof: Child, trackId: number): TrafRef | undefined {
  for (const traf of children(b, moof.start, moof.end)) {
    if (traf.type !== "traf") continue;
    const kids = children(b, traf.start, traf.end);
    const tfhd = kids.find((c) => c.type === "tfhd");
    if (!tfhd || b.readUInt32BE(tfhd.start + 4) !== trackId) continue;
    const tfFlags = b.readUInt32BE(tfhd.start) & 0xffffff;
    let p = tfhd.start + 8 + (tfFlags & 0x1 ? 8 : 0) + (tfFlags & 0x2 ? 4 : 0);
    const defDuration = tfFlags & 0x8 ? b.readUInt32BE(p) : 0;
    p += tfFlags & 0x8 ? 4 : 0;
    const defSize = tfFlags & 0x10 ? b.readUInt32BE(p) : 0;
    const tfdt = kids.find((c) => c.type === "tfdt");
    const baseTime = !tfdt
      ? 0
      : b[tfdt.start] === 1
        ? Number(b.readBigUInt64BE(tfdt.start + 4))
        : b.readUInt32BE(tfdt.start + 4);
    const trun = kids.find((c) => c.type === "trun");
    if (!trun) return undefined;
    const fl = b.readUInt32BE(trun.start) & 0xffffff;
    if (!(fl & 0x1)) throw new Error("trun without data_offset: cannot split the fragment");
    const count = b.readUInt32BE(trun.start + 4);
    const dataOffsetAt = trun.start + 8;
    let q = dataOffsetAt + 4 + (fl & 0x4 ? 4 : 0);
    let size = 0;
    let duration = 0;
    for (let i = 0; i < count && q <= trun.end; i++) {
      duration += fl & 0x100 ? b.readUInt32BE(q) : defDuration;
      q += fl & 0x100 ? 4 : 0;
      size += fl & 0x200 ? b.readUInt32BE(q) : defSize;
      q += (fl & 0x200 ? 4 : 0) + (fl & 0x400 ? 4 : 0) + (fl & 0x800 ? 4 : 0);
    }
    const dataOffset = b.readInt32BE(dataOffsetAt);
    return { traf, dataOffsetAt, dataOffset, size, baseTime, duration, samples: count };
  }
  return undefined;
}

/** Each moof of a muxed segment (with the track's traf, if it has samples there) and the mdat after it. */
function* fragmentsOf(data: Buffer, trackId: number): Generator<{ moof: Child; ref: TrafRef }> {
  for (const c of children(data, 0, data.length)) {
    if (c.type !== "moof") continue;
    const ref = trafOf(data, c, trackId);
    if (ref && ref.samples > 0) yield { moof: c, ref };
  }
}

/** Where a track's samples sit in a muxed segment (undefined: the segment has none of that track). */
export function trackSlice(data: Buffer, trackId: number): TrackSlice | undefined {
  let out: TrackSlice | undefined;
  for (const { ref } of fragmentsOf(data, trackId)) {
    out ??= { t: ref.baseTime, d: 0, bytes: 0, samples: 0 };
    out.d += ref.duration;
    out.bytes += ref.size;
    out.samples += ref.samples;
  }
  return out;
}

/** Track files are carved from slabs like the muxer's fragments: few ArrayBuffers, freed with their segments. */
const slab = new Slab(4 * 1024 * 1024);

/**
 * The single-track fragments of `trackId` in a muxed segment: per fragment, a moof with the original mfhd and
 * that track's traf (data_offset patched), and an mdat with only its samples.
 */
export function trackSegment(data: Buffer, trackId: number): Buffer {
  const frags = [...fragmentsOf(data, trackId)];
  const mfhdSize = (m: Child) => {
    const mfhd = children(data, m.start, m.end).find((c) => c.type === "mfhd");
    return mfhd ? mfhd.end - mfhd.start + 8 : 0;
  };
  let total = 0;
  for (const { moof, ref } of frags) total += 8 + mfhdSize(moof) + (ref.traf.end - ref.traf.start + 8) + 8 + ref.size;
  const out = slab.take(total);
  let p = 0;
  for (const { moof, ref } of frags) {
    const moofStart = moof.start - 8;
    const mfhd = children(data, moof.start, moof.end).find((c) => c.type === "mfhd");
    const trafBytes = data.subarray(ref.traf.start - 8, ref.traf.end);
    const moofSize = 8 + mfhdSize(moof) + trafBytes.length;
    out.writeUInt32BE(moofSize, p);
    out.write("moof", p + 4, "latin1");
    let q = p + 8;
    if (mfhd) q += data.copy(out, q, mfhd.start - 8, mfhd.end);
    const trafAt = q;
    q += trafBytes.copy(out, q);
    // The samples now follow the new moof's mdat header.
    out.writeInt32BE(moofSize + 8, trafAt + (ref.dataOffsetAt - (ref.traf.start - 8)));
    out.writeUInt32BE(8 + ref.size, q);
    out.write("mdat", q + 4, "latin1");
    const from = moofStart + ref.dataOffset;
    if (from < 0 || from + ref.size > data.length) throw new Error("fragment data outside the segment");
    data.copy(out, q + 8, from, from + ref.size);
    p = q + 8 + ref.size;
  }
  return out;
}

/**
 * A single-track init segment (a CMAF header): ftyp with `cmfc`, the muxed init's mvhd, the track's trak, and an mvex with its trex only
 * (the track keeps its track_ID, so the fragments' tfhd need no rewrite).
 */
export function trackInit(init: Buffer, trackId: number): Buffer {
  const top = children(init, 0, init.length);
  const moov = top.find((c) => c.type === "moov");
  if (!moov) throw new Error("init segment without moov");
  const whole = (c: Child) => init.subarray(c.start - 8, c.end);
  const kids: Buffer[] = [];
  let found = false;
  for (const c of children(init, moov.start, moov.end)) {
    if (c.type === "trak") {
      const tkhd = children(init, c.start, c.end).find((k) => k.type === "tkhd");
      const id = tkhd && init.readUInt32BE(tkhd.start + (init[tkhd.start] === 1 ? 20 : 12));
      if (id === trackId) {
        kids.push(whole(c));
        found = true;
      }
    } else if (c.type === "mvex") {
      const trex = children(init, c.start, c.end).filter(
        (k) => k.type !== "trex" || init.readUInt32BE(k.start + 4) === trackId,
      );
      kids.push(box("mvex", ...trex.map(whole)));
    } else kids.push(whole(c));
  }
  if (!found) throw new Error(`no track ${trackId} in the init segment`);
  return Buffer.concat([ftyp(true), box("moov", ...kids)]);
}
