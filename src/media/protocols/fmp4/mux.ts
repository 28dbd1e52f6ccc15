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

/** One track's samples in a fragment. `baseTime` and durations are in the track's timescale. */
export interface TrackRun {
  baseTime: number;
  samples: { data: Buffer; duration: number; cts: number; sync: boolean }[];
  /** Write composition offsets (video). */
  withCts: boolean;
}

const SYNC = 0x02000000; // sample_depends_on = 2 (depends on no other sample)
const NON_SYNC = 0x01010000; // sample_depends_on = 1, sample_is_non_sync_sample

/**
 * A fragment of all tracks (runs[i] is track i + 1; empty runs are left out): `moof` and `mdat`, adjacent in one
 * buffer from `alloc` (a slab: consecutive fragments then join without copying).
 */
export function fragment(
  sequence: number,
  runs: TrackRun[],
  alloc: (n: number) => Buffer = Buffer.allocUnsafe,
): { moof: Buffer; mdat: Buffer } {
  const trafs: Buffer[] = [];
  /** Each traf's first byte in the mdat (mdat header included). */
  const offsets: number[] = [];
  let mdatSize = 8;
  runs.forEach((run, i) => {
    const n = run.samples.length;
    if (n === 0) return;
    const perSample = run.withCts ? 16 : 12;
    const trun = Buffer.allocUnsafe(8 + 4 + perSample * n);
    // Version 1: signed composition offsets, so B-frame streams need no edit list.
    trun.writeUInt32BE(((run.withCts ? 1 : 0) << 24) | 0x000701 | (run.withCts ? 0x800 : 0), 0);
    trun.writeUInt32BE(n, 4);
    let p = 12;
    for (const s of run.samples) {
      trun.writeUInt32BE(s.duration >>> 0, p);
      trun.writeUInt32BE(s.data.length, p + 4);
      trun.writeUInt32BE(s.sync ? SYNC : NON_SYNC, p + 8);
      if (run.withCts) trun.writeInt32BE(s.cts, p + 12);
      p += perSample;
    }
    offsets.push(mdatSize);
    for (const s of run.samples) mdatSize += s.data.length;
    const tfhd = fullBox("tfhd", 0, 0x020000, u32(i + 1)); // default-base-is-moof
    const tfdt = Buffer.allocUnsafe(8);
    tfdt.writeBigUInt64BE(BigInt(Math.max(0, Math.round(run.baseTime))));
    trafs.push(box("traf", tfhd, fullBox("tfdt", 1, 0, tfdt), box("trun", trun)));
  });
  const built = box("moof", fullBox("mfhd", 0, 0, u32(sequence)), ...trafs);
  const out = alloc(built.length + mdatSize);
  const moof = out.subarray(0, built.length);
  built.copy(moof);
  // Patch each trun's data_offset: from the start of the moof to the track's first byte in the mdat.
  let trafStart = 8 + 16;
  trafs.forEach((traf, i) => {
    // traf header 8 + tfhd 16 + tfdt 20 + trun header 8 + version/flags 4 + sample_count 4.
    moof.writeUInt32BE(moof.length + (offsets[i] as number), trafStart + 8 + 16 + 20 + 16);
    trafStart += traf.length;
  });
  const mdat = out.subarray(moof.length);
  mdat.writeUInt32BE(mdatSize, 0);
  mdat.write("mdat", 4, "latin1");
  let q = 8;
  for (const run of runs) for (const s of run.samples) q += s.data.copy(mdat, q);
  return { moof, mdat };
}
