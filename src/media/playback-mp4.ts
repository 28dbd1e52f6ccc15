/**
 * A playback plan (playback.ts) as one progressive MP4 (`format=mp4`, as MediaMTX's playback server answers): ftyp,
 * then a moov with full sample tables, then one mdat ("faststart": a player learns everything from the first bytes
 * and may start before the end arrives). Everything but the sample bytes comes from the plan's moofs, which are in
 * memory, so the moov and every size are known before the first byte is sent; the mdat is the fragments' sample
 * bytes in their recorded order (each trun one chunk), streamed from the recorded files by `writePieces`.
 *
 * Per track, from the init segment: tkhd, mdhd, hdlr, the media header, dinf and stsd are copied (durations set);
 * stts, ctts (when any composition offset; version 1 when one is negative), stss (when not every sample is a sync
 * sample), stsz, stsc and stco (co64 past 4 GiB) are written; an edit list when the track starts after the movie
 * (an empty edit) or its first presented sample is not at decode time 0 (composition offsets of B-frames).
 * Fragments of joined files keep their place on the timeline: a jump between one fragment's end and the next one's
 * tfdt lengthens (or shortens) the sample before it. Tracks with no sample in the range are left out.
 */
import { AmiError } from "../core/errors.ts";
import type { Piece, Plan } from "./playback.ts";
import { type Child, children } from "./protocols/fmp4/boxes.ts";
import { ftyp } from "./protocols/fmp4/mux.ts";
import { box, fullBox, u32 } from "./protocols/fmp4/write.ts";

type PlanFrag = Plan["frags"][number];
type Source = PlanFrag["src"];

/** One trun's samples: its bytes are [from, to) of `src`. */
interface Chunk {
  track: number;
  count: number;
  src: Source;
  from: number;
  to: number;
}

interface TrackSamples {
  id: number;
  durations: Grow;
  sizes: Grow;
  cts: Grow;
  /** 1-based numbers of sync samples. */
  syncs: number[];
  firstDts: number;
  /** Decode time after the last sample. */
  nextDts: number;
  chunks: number;
}

/** One traf as read from a moof: its base decode time and runs of samples at offsets from the moof's start. */
interface Traf {
  track: number;
  baseTime: number | undefined;
  runs: { at: number; samples: { duration: number; size: number; flags: number; cts: number }[] }[];
}

export interface Progressive {
  /** ftyp + moov + the mdat header. */
  head: Buffer;
  /** The mdat payload, in order. */
  body: Piece[];
  bytes: number;
}

/** Fragments read between turns of the event loop. */
const YIELD_EVERY = 256;

const cannot = (why: string) => new AmiError("AMI_UNAVAILABLE", `this recording cannot be written as mp4: ${why}`);

/** Every sample of a moof (offsets relative to the moof's first byte; `defaults` per track from the init's trex). */
export function readTrafs(moof: Buffer, defaults: Map<number, { duration: number; flags: number }>): Traf[] {
  const out: Traf[] = [];
  let dataEnd: number | undefined; // where the previous traf's data ended (no base offset given)
  for (const traf of children(moof, 8, moof.length).filter((c) => c.type === "traf")) {
    const kids = children(moof, traf.start, traf.end);
    const tfhd = kids.find((c) => c.type === "tfhd");
    if (!tfhd) continue;
    const tf = moof.readUInt32BE(tfhd.start) & 0xffffff;
    const track = moof.readUInt32BE(tfhd.start + 4);
    let p = tfhd.start + 8;
    let base = dataEnd ?? 0;
    if (tf & 0x1) {
      throw cannot("a fragment with an absolute base data offset");
    }
    if (tf & 0x20000) base = 0; // default-base-is-moof
    if (tf & 0x2) p += 4;
    const def = defaults.get(track) ?? { duration: 0, flags: 0 };
    let defDuration = def.duration;
    let defSize: number | undefined;
    let defFlags = def.flags;
    if (tf & 0x8) {
      defDuration = moof.readUInt32BE(p);
      p += 4;
    }
    if (tf & 0x10) {
      defSize = moof.readUInt32BE(p);
      p += 4;
    }
    if (tf & 0x20) defFlags = moof.readUInt32BE(p);
    const tfdt = kids.find((c) => c.type === "tfdt");
    const baseTime = !tfdt
      ? undefined
      : moof[tfdt.start] === 1
        ? Number(moof.readBigUInt64BE(tfdt.start + 4))
        : moof.readUInt32BE(tfdt.start + 4);
    const t: Traf = { track, baseTime, runs: [] };
    let at = base;
    for (const trun of kids.filter((c) => c.type === "trun")) {
      const v = moof[trun.start] as number;
      const fl = moof.readUInt32BE(trun.start) & 0xffffff;
      const count = moof.readUInt32BE(trun.start + 4);
      let q = trun.start + 8;
      if (fl & 0x1) {
        at = base + moof.readInt32BE(q);
        q += 4;
      }
      let first: number | undefined;
      if (fl & 0x4) {
        first = moof.readUInt32BE(q);
        q += 4;
      }
      const per = 4 * ((fl & 0x100 ? 1 : 0) + (fl & 0x200 ? 1 : 0) + (fl & 0x400 ? 1 : 0) + (fl & 0x800 ? 1 : 0));
      if (q + per * count > trun.end) throw cannot("a truncated trun");
      const samples: Traf["runs"][number]["samples"] = [];
      let bytes = 0;
      for (let i = 0; i < count; i++) {
        const duration = fl & 0x100 ? moof.readUInt32BE(q) : defDuration;
        if (fl & 0x100) q += 4;
        const size = fl & 0x200 ? moof.readUInt32BE(q) : defSize;
        if (fl & 0x200) q += 4;
        if (size === undefined) throw cannot("samples without sizes");
        let flags = i === 0 && first !== undefined ? first : defFlags;
        if (fl & 0x400) {
          if (!(i === 0 && first !== undefined)) flags = moof.readUInt32BE(q);
          q += 4;
        }
        let cts = 0;
        if (fl & 0x800) {
          cts = v === 0 ? moof.readUInt32BE(q) : moof.readInt32BE(q);
          q += 4;
        }
        samples.push({ duration, size, flags, cts });
        bytes += size;
      }
      t.runs.push({ at, samples });
      at += bytes;
    }
    dataEnd = at;
    out.push(t);
  }
  return out;
}

/** The progressive MP4 of `plan`: its head (in memory) and the mdat's pieces (file ranges). */
export async function progressive(plan: Plan): Promise<Progressive> {
  const init = plan.init;
  const top = children(init, 0, init.length);
  const moovC = top.find((c) => c.type === "moov");
  if (!moovC) throw cannot("no moov in the recording");
  const moovKids = children(init, moovC.start, moovC.end);
  const defaults = new Map<number, { duration: number; flags: number }>();
  const mvex = moovKids.find((c) => c.type === "mvex");
  for (const c of mvex ? children(init, mvex.start, mvex.end) : []) {
    if (c.type === "trex")
      defaults.set(init.readUInt32BE(c.start + 4), {
        duration: init.readUInt32BE(c.start + 12),
        flags: init.readUInt32BE(c.start + 20),
      });
  }

  const tracks = new Map<number, TrackSamples>();
  const chunks: Chunk[] = [];
  for (const [k, f] of plan.frags.entries()) {
    // About 0.2 s of work per hour of samples: the loop is let go now and then (a day's range is thousands of them).
    if (k % YIELD_EVERY === YIELD_EVERY - 1) await new Promise<void>((r) => setImmediate(r));
    const moof = f.moof();
    const trafs = readTrafs(moof, defaults);
    // A cut fragment keeps each track's first samples: as many as its new moof's truns hold.
    const keep = new Map<number, number>();
    if (f.cut) {
      const cutMoof = f.cut.head.subarray(0, f.cut.head.readUInt32BE(0));
      for (const t of readTrafs(cutMoof, defaults))
        keep.set(t.track, (keep.get(t.track) ?? 0) + t.runs.reduce((n, r) => n + r.samples.length, 0));
    }
    for (const t of trafs) {
      let left = f.cut ? (keep.get(t.track) ?? 0) : Number.POSITIVE_INFINITY;
      if (left === 0) continue;
      let s = tracks.get(t.track);
      if (!s) {
        const dts = t.baseTime ?? 0;
        s = {
          id: t.track,
          durations: new Grow(false),
          sizes: new Grow(false),
          cts: new Grow(true),
          syncs: [],
          firstDts: dts,
          nextDts: dts,
          chunks: 0,
        };
        tracks.set(t.track, s);
      }
      if (t.baseTime !== undefined && t.baseTime !== s.nextDts && s.durations.length > 0) {
        // A jump on the timeline (files joined on the wall clock): the sample before it takes up the difference.
        const last = s.durations.length - 1;
        const was = s.durations.at(last);
        const d = Math.max(0, was + t.baseTime - s.nextDts);
        s.nextDts += d - was;
        s.durations.set(last, d);
      }
      for (const run of t.runs) {
        const n = Math.min(run.samples.length, left);
        if (n <= 0) break;
        left -= n;
        let bytes = 0;
        for (let i = 0; i < n; i++) {
          const smp = run.samples[i] as (typeof run.samples)[number];
          s.durations.push(smp.duration);
          s.sizes.push(smp.size);
          s.cts.push(smp.cts);
          if (((smp.flags >> 16) & 1) === 0) s.syncs.push(s.sizes.length);
          s.nextDts += smp.duration;
          bytes += smp.size;
        }
        chunks.push({ track: t.track, count: n, src: f.src, from: f.offset + run.at, to: f.offset + run.at + bytes });
        s.chunks++;
      }
    }
  }
  if (chunks.length === 0) throw new AmiError("M_NOT_FOUND", "nothing recorded in that range");

  const mvhd = moovKids.find((c) => c.type === "mvhd");
  if (!mvhd) throw cannot("no mvhd in the recording");
  const movieScale = init.readUInt32BE(mvhd.start + (init[mvhd.start] === 1 ? 20 : 12));
  const traks: { trak: Child; id: number; timescale: number; s: TrackSamples; tables: Buffer[] }[] = [];
  for (const trak of moovKids.filter((c) => c.type === "trak")) {
    const tkhd = children(init, trak.start, trak.end).find((c) => c.type === "tkhd");
    const mdia = children(init, trak.start, trak.end).find((c) => c.type === "mdia");
    const mdhd = mdia && children(init, mdia.start, mdia.end).find((c) => c.type === "mdhd");
    if (!tkhd || !mdhd) continue;
    const id = init.readUInt32BE(tkhd.start + (init[tkhd.start] === 1 ? 20 : 12));
    const s = tracks.get(id);
    if (!s || s.sizes.length === 0) continue;
    const timescale = init.readUInt32BE(mdhd.start + (init[mdhd.start] === 1 ? 20 : 12));
    traks.push({ trak, id, timescale, s, tables: sampleTables(s, chunks) });
  }
  // The movie starts at the earliest track's start.
  const t0 = Math.min(...traks.map((t) => t.s.firstDts / t.timescale));
  const mediaBytes = chunks.reduce((n, c) => n + c.to - c.from, 0);
  const large = mediaBytes + 8 > 0xffffffff;
  const mdatHead = large ? Buffer.alloc(16) : Buffer.alloc(8);
  mdatHead.writeUInt32BE(large ? 1 : mediaBytes + 8, 0);
  mdatHead.write("mdat", 4, "latin1");
  if (large) mdatHead.writeBigUInt64BE(BigInt(mediaBytes + 16), 8);

  const type = ftyp();
  // The moov's size does not depend on the chunk offsets' values, only on their width: build, measure, rebuild.
  const build = (dataAt: number, wide: boolean) => {
    let movieDur = 0;
    const built = traks.map((t) => {
      const mediaDur = t.s.nextDts - t.s.firstDts;
      const delay = Math.round((t.s.firstDts / t.timescale - t0) * movieScale);
      const edit = Math.round((mediaDur / t.timescale) * movieScale);
      movieDur = Math.max(movieDur, delay + edit);
      return { t, mediaDur, delay, edit };
    });
    let at = dataAt;
    const offsets = new Map<number, number[]>();
    for (const c of chunks) {
      const o = offsets.get(c.track) ?? [];
      if (o.length === 0) offsets.set(c.track, o);
      o.push(at);
      at += c.to - c.from;
    }
    const kids: Buffer[] = [];
    for (const c of moovKids) {
      if (c.type === "mvhd")
        kids.push(withDur(init, c, movieDur, traks.length ? Math.max(...traks.map((t) => t.id)) + 1 : 1));
      else if (c.type === "trak") {
        const b = built.find((x) => x.t.trak === c);
        if (b)
          kids.push(trakBox(init, c, b.t.s, b.t.tables, b.mediaDur, b.delay, b.edit, offsets.get(b.t.id) ?? [], wide));
      } else if (c.type !== "mvex") kids.push(init.subarray(c.start - 8, c.end));
    }
    return box("moov", ...kids);
  };
  let size = build(0, false).length;
  const wide = type.length + size + mdatHead.length + mediaBytes > 0xffffffff;
  if (wide) size = build(0, true).length;
  const moov = build(type.length + size + mdatHead.length, wide);
  const head = Buffer.concat([type, moov, mdatHead]);
  return {
    head,
    body: chunks.map((c) => ({ src: c.src, from: c.from, to: c.to })),
    bytes: head.length + mediaBytes,
  };
}

/** mvhd/tkhd/mdhd `c` of `b` copied with its duration set (and mvhd's next_track_ID, when given). */
function withDur(b: Buffer, c: Child, duration: number, nextTrack?: number): Buffer {
  const out = Buffer.from(b.subarray(c.start - 8, c.end));
  const v1 = out[8] === 1;
  const at = 8 + (c.type === "tkhd" ? (v1 ? 28 : 20) : v1 ? 24 : 16);
  if (v1) out.writeBigUInt64BE(BigInt(Math.round(duration)), at);
  else out.writeUInt32BE(Math.min(0xffffffff, Math.round(duration)), at);
  if (nextTrack !== undefined) out.writeUInt32BE(nextTrack, out.length - 4);
  return out;
}

/** A table box: `count` entries of `per` u32s each, written by `fill(entry index) -> values`. */
function table(
  type: string,
  version: number,
  head: number[],
  count: number,
  per: number,
  fill: (b: Buffer, i: number, at: number) => void,
): Buffer {
  const body = Buffer.allocUnsafe(4 * head.length + 4 * per * count);
  for (const [i, v] of head.entries()) body.writeUInt32BE(v >>> 0, 4 * i);
  for (let i = 0; i < count; i++) fill(body, i, 4 * head.length + 4 * per * i);
  return fullBox(type, version, 0, body);
}

/** A growing array of 32-bit integers (a day of samples is millions of them: 4 bytes each, not a JS array's 8+). */
class Grow {
  #a: Uint32Array | Int32Array;
  length = 0;
  constructor(signed: boolean) {
    this.#a = signed ? new Int32Array(1024) : new Uint32Array(1024);
  }
  push(v: number): void {
    if (this.length === this.#a.length) {
      const next = new (this.#a.constructor as Uint32ArrayConstructor | Int32ArrayConstructor)(this.length * 2);
      next.set(this.#a);
      this.#a = next;
    }
    this.#a[this.length++] = v;
  }
  at(i: number): number {
    return this.#a[i] as number;
  }
  set(i: number, v: number): void {
    this.#a[i] = v;
  }
  view(): Uint32Array | Int32Array {
    return this.#a.subarray(0, this.length);
  }
}

/** A table of run-length pairs (sample_count, value) of `values`: stts, ctts. Two passes, no per-entry objects. */
function runTable(type: string, version: number, values: Uint32Array | Int32Array): Buffer {
  let entries = 0;
  for (let i = 0; i < values.length; i++) if (i === 0 || values[i] !== values[i - 1]) entries++;
  const b = Buffer.allocUnsafe(4 + 8 * entries);
  b.writeUInt32BE(entries, 0);
  let at = 4 - 8;
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    if (i === 0 || v !== values[i - 1]) {
      at += 8;
      b.writeUInt32BE(0, at);
      if (v < 0) b.writeInt32BE(v, at + 4);
      else b.writeUInt32BE(v, at + 4);
    }
    b.writeUInt32BE(b.readUInt32BE(at) + 1, at);
  }
  return fullBox(type, version, 0, b);
}

/** A track's sample tables but the chunk offsets (they do not depend on where the mdat is). */
function sampleTables(s: TrackSamples, chunks: Chunk[]): Buffer[] {
  const n = s.sizes.length;
  const sizes = s.sizes.view();
  const cts = s.cts.view();
  const tables = [runTable("stts", 0, s.durations.view())];
  if (cts.some((c) => c !== 0)) tables.push(runTable("ctts", cts.some((c) => c < 0) ? 1 : 0, cts));
  if (s.syncs.length < n)
    tables.push(
      table("stss", 0, [s.syncs.length], s.syncs.length, 1, (b, i, at) => b.writeUInt32BE(s.syncs[i] as number, at)),
    );
  const same = sizes.every((z) => z === sizes[0]);
  tables.push(
    same
      ? fullBox("stsz", 0, 0, u32(sizes[0] as number, n))
      : table("stsz", 0, [0, n], n, 1, (b, i, at) => b.writeUInt32BE(sizes[i] as number, at)),
  );
  const perChunk = chunks.filter((c) => c.track === s.id).map((c) => c.count);
  const stsc: [number, number][] = []; // (first chunk, samples per chunk)
  perChunk.forEach((count, i) => {
    if (stsc.at(-1)?.[1] !== count) stsc.push([i + 1, count]);
  });
  tables.push(
    table("stsc", 0, [stsc.length], stsc.length, 3, (b, i, at) => {
      const [first, count] = stsc[i] as [number, number];
      b.writeUInt32BE(first, at);
      b.writeUInt32BE(count, at + 4);
      b.writeUInt32BE(1, at + 8);
    }),
  );
  return tables;
}

function trakBox(
  init: Buffer,
  trak: Child,
  s: TrackSamples,
  sampleBoxes: Buffer[],
  mediaDur: number,
  delay: number,
  edit: number,
  offsets: number[],
  wide: boolean,
): Buffer {
  const n = s.sizes.length;
  const durations = s.durations.view();
  const cts = s.cts.view();
  const tables = [...sampleBoxes];
  tables.push(
    wide
      ? table("co64", 0, [offsets.length], offsets.length, 2, (b, i, at) =>
          b.writeBigUInt64BE(BigInt(offsets[i] as number), at),
        )
      : table("stco", 0, [offsets.length], offsets.length, 1, (b, i, at) => b.writeUInt32BE(offsets[i] as number, at)),
  );

  // The first presented sample's composition time: where the track's presentation starts.
  let firstPts = Number.POSITIVE_INFINITY;
  for (let i = 0, dts = 0; i < n && i < 64; dts += durations[i] as number, i++)
    firstPts = Math.min(firstPts, dts + (cts[i] as number));
  firstPts = Math.max(0, firstPts);
  const edits: Buffer[] = [];
  if (delay > 0) edits.push(u32(delay, 0xffffffff, 0x00010000)); // an empty edit: the track starts later
  if (firstPts > 0 || delay > 0) edits.push(u32(edit, firstPts, 0x00010000));
  const edts = edits.length > 0 ? box("edts", fullBox("elst", 0, 0, u32(edits.length), ...edits)) : undefined;

  const kids: Buffer[] = [];
  for (const c of children(init, trak.start, trak.end)) {
    if (c.type === "tkhd") {
      kids.push(withDur(init, c, delay + edit));
      if (edts) kids.push(edts);
    } else if (c.type === "edts") continue;
    else if (c.type === "mdia")
      kids.push(box("mdia", ...children(init, c.start, c.end).map((m) => mdiaChild(init, m, mediaDur, tables))));
    else kids.push(init.subarray(c.start - 8, c.end));
  }
  return box("trak", ...kids);
}

function mdiaChild(init: Buffer, c: Child, mediaDur: number, tables: Buffer[]): Buffer {
  if (c.type === "mdhd") return withDur(init, c, mediaDur);
  if (c.type !== "minf") return init.subarray(c.start - 8, c.end);
  return box(
    "minf",
    ...children(init, c.start, c.end).map((m) => {
      if (m.type !== "stbl") return init.subarray(m.start - 8, m.end);
      const stsd = children(init, m.start, m.end).find((x) => x.type === "stsd");
      if (!stsd) throw cannot("a track without sample descriptions");
      return box("stbl", init.subarray(stsd.start - 8, stsd.end), ...tables);
    }),
  );
}
