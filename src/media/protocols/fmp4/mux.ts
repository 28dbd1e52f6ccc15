/**
 * CMAF (fragmented MP4) writing: the init segment (ftyp + moov with one trak per track and mvex/trex) and one
 * fragment (moof + mdat) per LL-HLS part. Tracks are numbered from 1 in the order given (video first, as the
 * timeline and DASH code expect); sample entries come from sample-entries.ts.
 */
import type { TrackCodec } from "./sample-entries.ts";
import { box, fullBox, u16, u32, zeros } from "./write.ts";

const MATRIX = u32(0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000);

/**
 * `cmaf`: claim the CMAF brand `cmfc`, which a CMAF track file (one track) may carry; the muxed A/V init that
 * HLS and recordings use has two tracks and so is no CMAF header.
 */
export function ftyp(cmaf = false): Buffer {
  const brands = ["iso6", ...(cmaf ? ["cmfc"] : []), "isom", "mp41"];
  return box("ftyp", Buffer.from("iso6", "latin1"), u32(0), Buffer.from(brands.join(""), "latin1"));
}

function trak(id: number, t: TrackCodec): Buffer {
  const video = t.kind === "video";
  const tkhd = fullBox(
    "tkhd",
    0,
    3, // enabled, in movie
    u32(0, 0, id, 0, 0), // creation, modification, track_ID, reserved, duration
    zeros(8),
    u16(0, 0, video ? 0 : 0x0100, 0), // layer, alternate_group, volume, reserved
    MATRIX,
    u32((t.width ?? 0) * 65536, (t.height ?? 0) * 65536),
  );
  const mdhd = fullBox("mdhd", 0, 0, u32(0, 0, t.timescale, 0), u16(0x55c4, 0)); // language 'und'
  const name = video ? "VideoHandler" : "SoundHandler";
  const hdlr = fullBox(
    "hdlr",
    0,
    0,
    u32(0),
    Buffer.from(video ? "vide" : "soun", "latin1"),
    zeros(12),
    Buffer.from(`${name}\0`),
  );
  const header = video ? fullBox("vmhd", 0, 1, zeros(8)) : fullBox("smhd", 0, 0, zeros(4));
  const dinf = box("dinf", fullBox("dref", 0, 0, u32(1), fullBox("url ", 0, 1)));
  const stbl = box(
    "stbl",
    fullBox("stsd", 0, 0, u32(1), t.entry),
    fullBox("stts", 0, 0, u32(0)),
    fullBox("stsc", 0, 0, u32(0)),
    fullBox("stsz", 0, 0, u32(0, 0)),
    fullBox("stco", 0, 0, u32(0)),
  );
  return box("trak", tkhd, box("mdia", mdhd, hdlr, box("minf", header, dinf, stbl)));
}

/** `moov` for the tracks (track_ID = index + 1). */
export function moov(tracks: TrackCodec[]): Buffer {
  const mvhd = fullBox(
    "mvhd",
    0,
    0,
    u32(0, 0, 1000, 0, 0x00010000), // creation, modification, timescale, duration, rate
    u16(0x0100, 0),
    zeros(8),
    MATRIX,
    zeros(24),
    u32(tracks.length + 1),
  );
  const trex = tracks.map((_, i) => fullBox("trex", 0, 0, u32(i + 1, 1, 0, 0, 0)));
  return box("moov", mvhd, ...tracks.map((t, i) => trak(i + 1, t)), box("mvex", ...trex));
}

type Sample = { data: Buffer; duration: number; cts: number; sync: boolean };

/** One track's samples in a fragment. `baseTime` and durations are in the track's timescale. */
export interface TrackRun {
  baseTime: number;
  samples: Sample[];
  /** Write composition offsets (video). */
  withCts: boolean;
}

const SYNC = 0x02000000; // sample_depends_on = 2 (depends on no other sample)
const NON_SYNC = 0x01010000; // sample_depends_on = 1, sample_is_non_sync_sample

/**
 * A fragment of all tracks (runs[i] is track i + 1; empty runs are left out): `moof` and `mdat`, adjacent in one
 * buffer from `alloc` (a slab: consecutive fragments then join without copying). Written in one pass straight
 * into that buffer (sizes first): one fragment per part is 5 a second per stream, and building it from a Buffer
 * per box and a concatenation per level was most of the muxer's garbage.
 */
export function fragment(
  sequence: number,
  runs: TrackRun[],
  alloc: (n: number) => Buffer = Buffer.allocUnsafe,
): { moof: Buffer; mdat: Buffer } {
  // moof: header 8 + mfhd 16, then per non-empty run a traf: header 8 + tfhd 16 + tfdt 20 + trun (header 8,
  // version/flags 4, sample_count 4, data_offset 4, then 12 or 16 bytes per sample).
  let moofSize = 8 + 16;
  let mdatSize = 8;
  // Index loops throughout: this runs a few times a second, too rarely for V8 to optimise away for-of's iterators.
  for (let r = 0; r < runs.length; r++) {
    const run = runs[r] as TrackRun;
    const n = run.samples.length;
    if (n === 0) continue;
    moofSize += 8 + 16 + 20 + 20 + (run.withCts ? 16 : 12) * n;
    for (let k = 0; k < n; k++) mdatSize += (run.samples[k] as Sample).data.length;
  }
  const out = alloc(moofSize + mdatSize);
  let p = head(out, 0, moofSize, "moof");
  p = head(out, p, 16, "mfhd");
  p = out.writeUInt32BE(0, p);
  p = out.writeUInt32BE(sequence >>> 0, p);
  /** Where the next track's samples start in the mdat, from the start of the moof. */
  let dataOffset = moofSize + 8;
  for (let i = 0; i < runs.length; i++) {
    const run = runs[i] as TrackRun;
    const n = run.samples.length;
    if (n === 0) continue;
    const perSample = run.withCts ? 16 : 12;
    const trunSize = 20 + perSample * n;
    p = head(out, p, 8 + 16 + 20 + trunSize, "traf");
    p = head(out, p, 16, "tfhd");
    p = out.writeUInt32BE(0x020000, p); // default-base-is-moof
    p = out.writeUInt32BE(i + 1, p);
    p = head(out, p, 20, "tfdt");
    p = out.writeUInt32BE(0x01000000, p); // version 1: 64-bit baseMediaDecodeTime
    const base = Math.max(0, Math.round(run.baseTime));
    p = out.writeUInt32BE(Math.floor(base / 2 ** 32) >>> 0, p);
    p = out.writeUInt32BE(base >>> 0, p);
    p = head(out, p, trunSize, "trun");
    // Version 1: signed composition offsets, so B-frame streams need no edit list.
    p = out.writeUInt32BE(((run.withCts ? 1 : 0) << 24) | 0x000701 | (run.withCts ? 0x800 : 0), p);
    p = out.writeUInt32BE(n, p);
    p = out.writeUInt32BE(dataOffset, p);
    for (let k = 0; k < n; k++) {
      const s = run.samples[k] as Sample;
      p = out.writeUInt32BE(s.duration >>> 0, p);
      p = out.writeUInt32BE(s.data.length, p);
      p = out.writeUInt32BE(s.sync ? SYNC : NON_SYNC, p);
      if (run.withCts) p = out.writeInt32BE(s.cts, p);
      dataOffset += s.data.length;
    }
  }
  p = head(out, p, mdatSize, "mdat");
  for (let r = 0; r < runs.length; r++) {
    const samples = (runs[r] as TrackRun).samples;
    for (let k = 0; k < samples.length; k++) p += (samples[k] as Sample).data.copy(out, p);
  }
  return { moof: out.subarray(0, moofSize), mdat: out.subarray(moofSize) };
}

/** A box header (size, type) at `p`; returns the position after it. */
function head(b: Buffer, p: number, size: number, type: string): number {
  b.writeUInt32BE(size, p);
  for (let i = 0; i < 4; i++) b[p + 4 + i] = type.charCodeAt(i);
  return p + 8;
}
