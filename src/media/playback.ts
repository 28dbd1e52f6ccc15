/**
 * Playback of recordings, after MediaMTX's playback server: what a path has recorded as contiguous spans
 * (`list`), and any time range of it as one fragmented MP4 (`plan` + `planBytes`) or as an HLS VOD playlist
 * (`hlsPlaylist`, whose init and segments are slices of the same plan). servers/http/playback.ts puts them on the
 * media HTTP listener.
 *
 * The recordings are read where recordings.ts leaves them: plain files `<dir>/<path>/*.mp4` and finished files in
 * the content-addressed store (`<dir>/.cas/<path>.json`: file name -> object id), whether or not the path is still
 * being recorded. Each file is indexed once (init segment, wall-clock start from its `prft` box, and per fragment:
 * offset, moof, media time, duration, keyframe) by reading only its box headers, moofs and init; the mdat bytes are
 * never read for that. Indexes are cached (plain files by size and mtime, stored ones by object id): full ones for
 * the last CACHE_FILES files (what `plan` reads), and a few numbers per file for many more (what `list` reads).
 *
 * A range is cut at fragment boundaries (the recorder's fragments are one second at most and every keyframe starts
 * one): from the last fragment starting on a keyframe at or before `start`, through the last fragment starting
 * before `start + duration`, across files, under the first file's init segment. A codec change (a file with another
 * init segment) ends the range there. Each fragment's moof is rewritten (sequence number, and tfdt so the output's
 * media time starts at 0 and files join on the wall clock); the mdat bytes are streamed from the files as they are.
 */
import { statSync } from "node:fs";
import { type FileHandle, open, readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import type { CasStore } from "../cas/types.ts";
import { AmiError } from "../core/errors.ts";
import { validPath } from "./hub.ts";
import { children, parseInit, parseMoof, type TrackInfo } from "./protocols/fmp4/boxes.ts";
import { box } from "./protocols/fmp4/write.ts";
import { readProducerTime } from "./record-file.ts";

/** Spans closer than this (s) are one span in `list` (files of one run join exactly; this absorbs clock jitter). */
const JOIN_S = 1;
/** A moov or moof larger than this is not ours (a damaged file): the file is indexed up to there. */
const MAX_HEADER_BOX = 16 * 1024 * 1024;
/** Fully indexed files (every moof) kept in memory; `plan` needs only the files of its range. */
const CACHE_FILES = 128;
/** File summaries (placement, span, codec configuration) kept: `list` walks every file of a path. */
const CACHE_SUMMARIES = 100_000;
/** Files stat'ed at once when listing a path; up to SYNC_STATS files, synchronously. */
const STAT_BATCH = 64;
const SYNC_STATS = 64;
/** HLS VOD: a segment is cut at the first keyframe fragment once it holds this much media. */
export const HLS_SEGMENT_S = 4;

interface Frag {
  /** Offset of the moof in the file; moof + mdat are `size` bytes. */
  offset: number;
  size: number;
  moof: Buffer;
  /** Media time (s, in the file) of the fragment's main-track start, its main-track duration, keyframe start. */
  time: number;
  duration: number;
  sync: boolean;
}

interface FileIndex {
  init: Buffer;
  /** The moov with mvhd's duration zeroed: equal for files that share a codec configuration. */
  config: Buffer;
  tracks: TrackInfo[];
  main: TrackInfo;
  /** Unix time (s) of the file's media time 0, from its prft; undefined for files recorded before prft. */
  wall: number | undefined;
  frags: Frag[];
  /** Media time of the end of the last fragment. */
  end: number;
}

interface Source {
  name: string;
  size: number;
  /** Cache key: changes when the bytes may have. */
  key: string;
  reader(): Promise<RandomReader>;
  /** Positioned reads straight into the caller's buffer (what answers are written from). */
  open(): Promise<PosReader>;
}

interface PosReader {
  /** Reads [pos, pos + len) into `buf` at `off`; fewer bytes only at the end of the file. */
  readInto(buf: Buffer, off: number, len: number, pos: number): Promise<number>;
  close(): Promise<void>;
}

interface RandomReader {
  read(pos: number, len: number): Promise<Buffer>;
  close(): Promise<void>;
}

/** What `list` needs of a file: a few numbers, kept for many more files than full indexes. */
interface Summary {
  wall: number | undefined;
  /** Media time of the first fragment and of the end of the last one. */
  first: number;
  end: number;
}

/** A recorded file placed on the clock. */
interface Placed {
  src: Source;
  ix: Summary;
  /** Unix time (s) of media time 0. */
  at: number;
}

export interface Span {
  /** RFC 3339 */
  start: string;
  /** Seconds. */
  duration: number;
}

interface PlanFrag {
  src: Source;
  offset: number;
  size: number;
  /** The rewritten moof (same length as the recorded one), made on first use (as the answer is written). */
  moof: () => Buffer;
  moofLen: number;
  /** Output media time (s) and main-track duration. */
  time: number;
  duration: number;
  sync: boolean;
  /**
   * The last fragment, cut at the range's end: its new moof + mdat header, then these byte ranges of the recorded
   * fragment (from its moof's start) in order, instead of the whole fragment.
   */
  cut?: { head: Buffer; ranges: [number, number][] };
}

export interface Plan {
  /** ftyp + moov of the first file, mvhd's duration set to the plan's. */
  init: Buffer;
  /** Unix time (s) of output media time 0 (the first fragment's start). */
  start: number;
  /** Seconds of media (main track). */
  duration: number;
  frags: PlanFrag[];
  /** init plus every fragment. */
  bytes: number;
}

export interface PlaybackOptions {
  /** The recordings directory (media.recordPath). */
  dir: string;
  cas?: CasStore;
}

const bad = (msg: string) => new AmiError("AMI_INVALID_INPUT", msg);

export const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

/** An RFC 3339 time -> Unix seconds; a clear 400 otherwise. */
export function parseTime(name: string, v: string | null | undefined): number {
  if (!v) throw bad(`'${name}' is required (an RFC 3339 time, e.g. 2026-12-06T23:20:00Z)`);
  const ms = RFC3339.test(v) ? Date.parse(v.replace(" ", "T")) : Number.NaN;
  if (!Number.isFinite(ms)) throw bad(`'${name}' must be an RFC 3339 time (e.g. 2026-12-06T23:20:00Z), not '${v}'`);
  return ms / 1000;
}

/** Seconds (a positive decimal number, at most a day: a request is bounded) -> number; a clear 400 otherwise. */
export function parseDuration(v: string | null | undefined): number {
  if (!v) throw bad("'duration' is required (seconds, e.g. 60 or 12.5)");
  const n = /^\d{1,6}(\.\d{1,9})?$/.test(v) ? Number(v) : Number.NaN;
  if (!(n > 0)) throw bad(`'duration' must be a positive number of seconds, not '${v}'`);
  if (n > 86_400) throw bad("'duration' is at most 86400 seconds (one day) per request");
  return n;
}

export function checkPath(p: string | null | undefined): string {
  if (!p) throw bad("'path' is required (a stream path, e.g. live/cam1)");
  if (!validPath(p)) throw bad(`invalid stream path '${p}'`);
  return p;
}

export const iso = (s: number): string => new Date(Math.round(s * 1000)).toISOString();

export class Playback {
  readonly #o: PlaybackOptions;
  readonly #cache = new Map<string, Promise<FileIndex | undefined>>();
  readonly #summaries = new Map<string, Summary | null>();

  constructor(o: PlaybackOptions) {
    this.#o = o;
  }

  /** The path's recorded files, oldest first: plain files and stored ones (a file in both: the stored copy). */
  async #sources(path: string): Promise<Source[]> {
    const byName = new Map<string, Source>();
    const dir = join(this.#o.dir, path);
    let names: string[] = [];
    try {
      names = (await readdir(dir)).filter((n) => /^\d+-\d+\.mp4$/.test(n));
    } catch {}
    // A few files (a request's usual case) are stat'ed on the loop: a few µs each, where a thread-pool round trip
    // costs 0.1-2 ms under load; many in parallel batches (the loop is never held for a large directory).
    if (names.length <= SYNC_STATS) {
      for (const name of names) {
        const st = statSync(join(dir, name), { throwIfNoEntry: false });
        if (st?.isFile()) byName.set(name, plainSource(name, join(dir, name), st.size, st.mtimeMs));
      }
      names = [];
    }
    for (let i = 0; i < names.length; i += STAT_BATCH) {
      const batch = names.slice(i, i + STAT_BATCH);
      const sts = await Promise.all(batch.map((n) => stat(join(dir, n)).catch(() => undefined)));
      batch.forEach((name, k) => {
        const st = sts[k];
        if (st?.isFile()) byName.set(name, plainSource(name, join(dir, name), st.size, st.mtimeMs));
      });
    }
    const cas = this.#o.cas;
    if (cas) {
      let index: Record<string, { id: string; bytes: number }> = {};
      try {
        index = JSON.parse(await readFile(join(this.#o.dir, ".cas", `${path}.json`), "utf8"));
      } catch {}
      for (const [name, s] of Object.entries(index)) {
        if (/^\d+-\d+\.mp4$/.test(name) && typeof s?.id === "string" && typeof s.bytes === "number")
          byName.set(name, casSource(cas, name, s.id, s.bytes));
      }
    }
    return [...byName.values()].sort((a, b) => runOf(a.name) - runOf(b.name) || a.name.localeCompare(b.name));
  }

  async #index(src: Source): Promise<FileIndex | undefined> {
    let p = this.#cache.get(src.key);
    if (p) {
      // Most recently used last.
      this.#cache.delete(src.key);
      this.#cache.set(src.key, p);
      return p;
    }
    p = indexFile(src).catch(() => undefined);
    this.#cache.set(src.key, p);
    while (this.#cache.size > CACHE_FILES) this.#cache.delete(this.#cache.keys().next().value as string);
    return p;
  }

  async #summary(src: Source): Promise<Summary | undefined> {
    let s = this.#summaries.get(src.key);
    if (s === undefined) {
      const ix = await this.#index(src);
      s = ix && ix.frags.length > 0 ? { wall: ix.wall, first: (ix.frags[0] as Frag).time, end: ix.end } : null;
      this.#summaries.set(src.key, s);
      while (this.#summaries.size > CACHE_SUMMARIES)
        this.#summaries.delete(this.#summaries.keys().next().value as string);
    }
    return s ?? undefined;
  }

  /** The path's files on the clock, oldest first (unreadable or empty files left out). */
  async #placed(path: string): Promise<Placed[]> {
    const out: Placed[] = [];
    for (const src of await this.#sources(path)) {
      const ix = await this.#summary(src);
      if (!ix) continue;
      let at = ix.wall;
      if (at === undefined) {
        // A file from before prft: its run's start (the name) plus the files of the run before it.
        const prev = out.at(-1);
        at = prev && runOf(prev.src.name) === runOf(src.name) ? prev.at + prev.ix.end : runOf(src.name) / 1000;
      }
      out.push({ src, ix, at });
    }
    return out;
  }

  /** Contiguous recorded spans of `path`, oldest first, clipped to [start, end) when given. */
  async list(path: string, start?: number, end?: number): Promise<Span[]> {
    const spans: { from: number; to: number }[] = [];
    for (const p of await this.#placed(path)) {
      const from = p.at + p.ix.first;
      const to = p.at + p.ix.end;
      const last = spans.at(-1);
      if (last && from - last.to <= JOIN_S && from >= last.from) last.to = Math.max(last.to, to);
      else spans.push({ from, to });
    }
    const out: Span[] = [];
    for (const s of spans) {
      const from = Math.max(s.from, start ?? s.from);
      const to = Math.min(s.to, end ?? s.to);
      if (to <= from) continue;
      out.push({ start: iso(from), duration: Math.round((to - from) * 1000) / 1000 });
    }
    return out;
  }

  /** Whether anything of `path` is recorded (404 vs an empty range). */
  async has(path: string): Promise<boolean> {
    return (await this.#placed(path)).length > 0;
  }

  /**
   * `has` and `plan` from one listing of the path's files (what a request needs): `recorded` false when nothing of
   * `path` is recorded at all, `plan` undefined when nothing is in the range.
   */
  async find(path: string, start: number, duration: number): Promise<{ recorded: boolean; plan?: Plan }> {
    const placed = await this.#placed(path);
    return { recorded: placed.length > 0, plan: await this.#plan(placed, start, duration) };
  }

  /**
   * The fragments that cover [start, start + duration): from the keyframe fragment at or before `start` in the
   * file that holds `start` (else the first keyframe fragment after it), through the last fragment that starts
   * before the end. Undefined: nothing recorded in that range.
   */
  async plan(path: string, start: number, duration: number): Promise<Plan | undefined> {
    return this.#plan(await this.#placed(path), start, duration);
  }

  async #plan(placed: Placed[], start: number, duration: number): Promise<Plan | undefined> {
    const end = start + duration;
    const files: { src: Source; ix: FileIndex; at: number }[] = [];
    for (const p of placed) {
      if (p.at + p.ix.end <= start || p.at + p.ix.first >= end) continue;
      const ix = await this.#index(p.src);
      if (ix && ix.frags.length > 0) files.push({ src: p.src, ix, at: p.at });
    }
    let first: { file: number; frag: number } | undefined;
    const covering = files[0];
    if (covering && covering.at + covering.ix.frags[0]!.time <= start) {
      covering.ix.frags.forEach((f, i) => {
        if (f.sync && covering.at + f.time <= start) first = { file: 0, frag: i };
      });
    }
    if (!first) {
      outer: for (const [fi, p] of files.entries()) {
        for (const [i, f] of p.ix.frags.entries()) {
          if (f.sync && p.at + f.time >= start && p.at + f.time < end) {
            first = { file: fi, frag: i };
            break outer;
          }
        }
      }
    }
    if (!first) return undefined;
    const head = files[first.file]!;
    const t0 = head.at + (head.ix.frags[first.frag] as Frag).time;
    const frags: PlanFrag[] = [];
    let seq = 1;
    let mediaEnd = 0;
    for (const p of files.slice(first.file)) {
      if (!p.ix.config.equals(head.ix.config)) break; // a codec change: the range ends here
      const shift = p.at - t0;
      for (const [i, f] of p.ix.frags.entries()) {
        if (p === head && i < first.frag) continue;
        if (p.at + f.time >= end) break;
        const time = shift + f.time;
        const n = seq;
        const tracks = p.ix.tracks;
        const pf: PlanFrag = {
          src: p.src,
          offset: f.offset,
          size: f.size,
          moof: lazy(() => rewriteMoof(f.moof, n, tracks, shift)),
          moofLen: f.moof.length,
          time,
          duration: f.duration,
          sync: f.sync,
        };
        if (p.at + f.time + f.duration > end + 1e-6) {
          // The fragment holding the end: its samples from the end on are left out. Cut from the moof alone (the
          // sample bytes are read when the answer is written: planning reads no file).
          const cut = cutFragment(pf.moof(), f.size, p.ix.tracks, p.ix.main.id, end - t0);
          if (!cut) continue;
          if (cut.head) {
            pf.cut = { head: cut.head, ranges: cut.ranges };
            pf.size = cut.head.length + cut.ranges.reduce((n, [a, b]) => n + b - a, 0);
          }
          pf.duration = cut.duration;
        }
        seq++;
        frags.push(pf);
        mediaEnd = Math.max(mediaEnd, time + pf.duration);
      }
    }
    const init = withDuration(head.ix.init, mediaEnd);
    return {
      init,
      start: t0,
      duration: mediaEnd,
      frags,
      bytes: frags.reduce((n, f) => n + f.size, init.length),
    };
  }
}

const lazy = <T>(make: () => T): (() => T) => {
  let v: T | undefined;
  return () => (v ??= make());
};

/** The run a file belongs to: the `<start ms>` of its name. */
const runOf = (name: string) => Number(name.slice(0, name.indexOf("-")));

/** HLS VOD segments of a plan: fragment index ranges [from, to), cut on keyframe fragments. */
export function hlsSegments(plan: Plan): { from: number; to: number; duration: number }[] {
  const segs: { from: number; to: number; duration: number }[] = [];
  plan.frags.forEach((f, i) => {
    const cur = segs.at(-1);
    if (!cur || (f.sync && cur.duration >= HLS_SEGMENT_S)) segs.push({ from: i, to: i + 1, duration: f.duration });
    else {
      cur.to = i + 1;
      cur.duration = f.time + f.duration - (plan.frags[cur.from] as PlanFrag).time;
    }
  });
  return segs;
}

/** The VOD playlist of a plan; `uri(kind, n)` names the init (`init`) and each segment. */
export function hlsPlaylist(plan: Plan, uri: (kind: "init" | "segment", n: number) => string): string {
  const segs = hlsSegments(plan);
  const target = Math.max(1, ...segs.map((s) => Math.ceil(s.duration)));
  const lines = [
    "#EXTM3U",
    "#EXT-X-VERSION:7",
    `#EXT-X-TARGETDURATION:${target}`,
    "#EXT-X-MEDIA-SEQUENCE:0",
    "#EXT-X-PLAYLIST-TYPE:VOD",
    "#EXT-X-INDEPENDENT-SEGMENTS",
    `#EXT-X-PROGRAM-DATE-TIME:${iso(plan.start)}`,
    `#EXT-X-MAP:URI="${uri("init", 0)}"`,
  ];
  for (const [n, s] of segs.entries()) lines.push(`#EXTINF:${s.duration.toFixed(3)},`, uri("segment", n));
  lines.push("#EXT-X-ENDLIST", "");
  return lines.join("\n");
}

/** Where `writePieces` puts an answer's bytes. */
export interface PieceSink {
  /**
   * Write `parts` in order, as one batch. Resolves once they are handed on (their buffers may then be reused);
   * rejects when the reader has gone.
   */
  write(parts: Buffer[]): Promise<void>;
}

/** A part of an answer: bytes in memory (an init, a rewritten moof, a cut fragment's head) or a recorded file's. */
export type Piece = Buffer | (() => Buffer) | { src: Source; from: number; to: number };

const inMemory = (p: Piece): p is Buffer | (() => Buffer) => Buffer.isBuffer(p) || typeof p === "function";

/** Bytes read and written at a time per answer (one buffer filled while the one before is written). */
const CHUNK = 512 * 1024;
/** A file range starts a new buffer rather than a read smaller than this. */
const MIN_READ = 64 * 1024;
/** File ranges this close (a moof between two mdats) are one read. */
const GAP = 64 * 1024;
/** Read buffers kept for the next answers. */
const POOL_MAX = 16;
const pool: Buffer[] = [];

/** The pieces of fragments `frags` (in order), after `head` when given: each moof rewritten, each mdat from its file. */
export function pieces(frags: PlanFrag[], head?: Buffer): Piece[] {
  const out: Piece[] = head ? [head] : [];
  for (const f of frags) {
    if (f.cut) {
      out.push(f.cut.head);
      for (const [a, b] of f.cut.ranges) out.push({ src: f.src, from: f.offset + a, to: f.offset + b });
    } else {
      out.push(f.moof); // rewritten when written; it has the recorded one's length
      out.push({ src: f.src, from: f.offset + f.moofLen, to: f.offset + f.size });
    }
  }
  return out;
}

/**
 * Write `list` to `sink` with bounded memory: the file ranges are read into pooled buffers of CHUNK bytes (ranges of
 * one file a moof apart in one read), each buffer's pieces with the in-memory ones between them handed on as one
 * batch (one writev), the next buffer read while the one before is written. A file is opened once for its run.
 */
export async function writePieces(list: Piece[], sink: PieceSink): Promise<void> {
  let reader: { src: Source; r: PosReader } | undefined;
  let buf = pool.pop() ?? Buffer.allocUnsafeSlow(CHUNK);
  let used = 0;
  let parts: Buffer[] = [];
  let pending: { done: Promise<void>; buf?: Buffer; ok: boolean } | undefined;
  let failed = false;
  /** Hand on the pieces so far; `early`: before anything is read into `buf` (the answer starts without a read). */
  const flush = async (early = false) => {
    if (parts.length === 0) return;
    const now = { done: sink.write(parts), buf: early ? undefined : buf, ok: false };
    now.done.then(
      () => {
        now.ok = true;
      },
      () => {},
    );
    parts = [];
    if (pending) {
      await pending.done;
      if (pending.buf && pool.length < POOL_MAX) pool.push(pending.buf);
    }
    pending = now;
    if (early) return;
    buf = pool.pop() ?? Buffer.allocUnsafeSlow(CHUNK);
    used = 0;
  };
  try {
    let i = 0;
    let rest: { src: Source; from: number; to: number } | undefined;
    while (i < list.length) {
      const p = rest ?? list[i]!;
      if (inMemory(p)) {
        parts.push(typeof p === "function" ? p() : p);
        i++;
        continue;
      }
      if (p.to <= p.from) {
        i++;
        continue;
      }
      if (CHUNK - used < Math.min(MIN_READ, p.to - p.from)) await flush();
      const room = CHUNK - used;
      // This range and the next ones of the same file a small gap apart, while they fit (whole) in the buffer.
      let j = i;
      let end = p.to;
      for (let k = i + 1; !rest && k + 1 < list.length; k += 2) {
        const m = list[k]!;
        const q = list[k + 1]!;
        if (!inMemory(m) || inMemory(q)) break;
        if (q.src !== p.src || q.from < end || q.from - end > GAP || q.to - p.from > room) break;
        end = q.to;
        j = k + 1;
      }
      const len = Math.min(end - p.from, room);
      if (reader?.src !== p.src) {
        // The first bytes (the init, the first moof) go out before the first file is opened and read.
        if (!reader && !pending) await flush(true);
        await reader?.r.close();
        reader = undefined;
        reader = { src: p.src, r: await p.src.open() };
      }
      const n = await reader.r.readInto(buf, used, len, p.from);
      if (n < len) throw new Error("recorded file ended early");
      const at = used;
      used += len;
      if (j === i) {
        parts.push(buf.subarray(at, at + len));
        rest = p.from + len < p.to ? { src: p.src, from: p.from + len, to: p.to } : undefined;
        if (!rest) i++;
      } else {
        for (let x = i; x <= j; x++) {
          const e = list[x]!;
          parts.push(
            Buffer.isBuffer(e)
              ? e
              : typeof e === "function"
                ? e()
                : buf.subarray(at + e.from - p.from, at + e.to - p.from),
          );
        }
        i = j + 1;
      }
      if (used === CHUNK) await flush();
    }
    await flush();
    if (pending) await pending.done;
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    await reader?.r.close().catch(() => {});
    // A buffer the sink may still hold (it failed, or its write is unfinished) is left to the GC.
    if (!failed) {
      if (pending?.ok && pending.buf && pool.length < POOL_MAX) pool.push(pending.buf);
      if (pool.length < POOL_MAX) pool.push(buf);
    }
  }
}

/** The whole fMP4 of a plan, in memory (tests; answers are written with `writePieces`). */
export async function planBytes(plan: Plan): Promise<Buffer> {
  const out: Buffer[] = [];
  await writePieces(pieces(plan.frags, plan.init), {
    write: async (parts) => {
      for (const b of parts) out.push(Buffer.from(b));
    },
  });
  return Buffer.concat(out);
}

/**
 * The cut of a fragment (moof `moof`, then its mdat; `fragSize` bytes in all) that keeps only the samples that start
 * before `endS` (output media time), worked out from the moof alone: each trun keeps its first samples, the mdat
 * their bytes, the data offsets follow. `head` is the new moof + mdat header and `ranges` the byte ranges of the
 * recorded fragment (from the moof's start) that follow it. Undefined when the main track keeps no sample (the
 * fragment is left out). A layout this cannot cut (no data offset, no sample sizes) is kept whole (no `head`).
 */
export function cutFragment(
  moof: Buffer,
  fragSize: number,
  tracks: TrackInfo[],
  mainId: number,
  endS: number,
): { head?: Buffer; ranges: [number, number][]; duration: number } | undefined {
  const moofLen = moof.length;
  const whole = () => {
    const main = tracks.find((t) => t.id === mainId);
    const m = parseMoof(moof, tracks).find((t) => t.trackId === mainId);
    return { ranges: [], duration: m && main ? m.duration / main.timescale : 0 };
  };
  const kids = children(moof, 8, moofLen);
  const mfhd = kids.find((c) => c.type === "mfhd");
  if (!mfhd) return whole();
  const trafs: { pre: Buffer[]; trun: Buffer; range: [number, number] }[] = [];
  let mainDuration = 0;
  let mainKept = 0;
  for (const traf of kids.filter((c) => c.type === "traf")) {
    const tk = children(moof, traf.start, traf.end);
    const tfhd = tk.find((c) => c.type === "tfhd");
    const trun = tk.find((c) => c.type === "trun");
    if (!tfhd || !trun || tk.filter((c) => c.type === "trun").length !== 1) return whole();
    const tfFlags = moof.readUInt32BE(tfhd.start) & 0xffffff;
    const id = moof.readUInt32BE(tfhd.start + 4);
    const track = tracks.find((t) => t.id === id);
    if (!track) return whole();
    let q = tfhd.start + 8 + (tfFlags & 0x1 ? 8 : 0) + (tfFlags & 0x2 ? 4 : 0);
    const defDuration = tfFlags & 0x8 ? moof.readUInt32BE(q) : track.defaultDuration;
    const tfdt = tk.find((c) => c.type === "tfdt");
    const base = !tfdt
      ? 0
      : moof[tfdt.start] === 1
        ? Number(moof.readBigUInt64BE(tfdt.start + 4))
        : moof.readUInt32BE(tfdt.start + 4);
    const fl = moof.readUInt32BE(trun.start) & 0xffffff;
    if (!(fl & 0x1) || !(fl & 0x200)) return whole();
    const count = moof.readUInt32BE(trun.start + 4);
    const dataOffset = moof.readInt32BE(trun.start + 8);
    q = trun.start + 12 + (fl & 0x4 ? 4 : 0);
    const entriesAt = q;
    const per = (fl & 0x100 ? 4 : 0) + 4 + (fl & 0x400 ? 4 : 0) + (fl & 0x800 ? 4 : 0);
    const endTicks = endS * track.timescale;
    let dts = base;
    let kept = 0;
    let bytes = 0;
    for (let i = 0; i < count; i++, q += per) {
      if (q + per > trun.end || dts >= endTicks) break;
      const d = fl & 0x100 ? moof.readUInt32BE(q) : defDuration;
      bytes += moof.readUInt32BE(q + (fl & 0x100 ? 4 : 0));
      dts += d;
      kept++;
    }
    if (id === mainId) {
      mainDuration = (dts - base) / track.timescale;
      mainKept = kept;
    }
    if (kept === 0) continue;
    const from = dataOffset;
    if (from < moofLen || from + bytes > fragSize) return whole();
    const head = Buffer.from(moof.subarray(trun.start - 8, entriesAt));
    head.writeUInt32BE(8 + (entriesAt - trun.start) + kept * per, 0);
    head.writeUInt32BE(kept, 12);
    const newTrun = Buffer.concat([head, moof.subarray(entriesAt, entriesAt + kept * per)]);
    const pre = tk.filter((c) => c.type !== "trun").map((c) => moof.subarray(c.start - 8, c.end));
    trafs.push({ pre, trun: newTrun, range: [from, from + bytes] });
  }
  if (mainKept === 0) return undefined;
  const mfhdBox = moof.subarray(mfhd.start - 8, mfhd.end);
  const trafBoxes = trafs.map((t) => box("traf", ...t.pre, t.trun));
  const out = box("moof", mfhdBox, ...trafBoxes);
  const mdatLen = 8 + trafs.reduce((n, t) => n + t.range[1] - t.range[0], 0);
  let at = 8 + mfhdBox.length;
  let dataAt = out.length + 8;
  trafs.forEach((t, i) => {
    const preLen = t.pre.reduce((n, b) => n + b.length, 0);
    out.writeInt32BE(dataAt, at + 8 + preLen + 16);
    dataAt += t.range[1] - t.range[0];
    at += (trafBoxes[i] as Buffer).length;
  });
  const mdatHead = Buffer.alloc(8);
  mdatHead.writeUInt32BE(mdatLen, 0);
  mdatHead.write("mdat", 4, "latin1");
  return { head: Buffer.concat([out, mdatHead]), ranges: trafs.map((t) => t.range), duration: mainDuration };
}

/** A copy of `moof` with mfhd's sequence number `seq` and each track's tfdt moved by `shiftS` seconds. */
function rewriteMoof(moof: Buffer, seq: number, tracks: TrackInfo[], shiftS: number): Buffer {
  const out = Buffer.from(moof);
  for (const c of children(out, 8, out.length)) {
    if (c.type === "mfhd") out.writeUInt32BE(seq >>> 0, c.start + 4);
    if (c.type !== "traf") continue;
    let id = 0;
    for (const k of children(out, c.start, c.end)) {
      if (k.type === "tfhd") id = out.readUInt32BE(k.start + 4);
      if (k.type !== "tfdt") continue;
      const ts = tracks.find((t) => t.id === id)?.timescale ?? 1;
      const by = Math.round(shiftS * ts);
      if (out[k.start] === 1) {
        const v = Number(out.readBigUInt64BE(k.start + 4)) + by;
        out.writeBigUInt64BE(BigInt(Math.max(0, v)), k.start + 4);
      } else {
        const v = out.readUInt32BE(k.start + 4) + by;
        out.writeUInt32BE(Math.min(0xffffffff, Math.max(0, v)), k.start + 4);
      }
    }
  }
  return out;
}

/** ftyp + moov with mvhd's duration (ms: the recorder's movie timescale is 1000) set to `seconds`. */
function withDuration(init: Buffer, seconds: number): Buffer {
  const out = Buffer.from(init);
  const moov = children(out, 0, out.length).find((c) => c.type === "moov");
  const mvhd = moov && children(out, moov.start, moov.end).find((c) => c.type === "mvhd");
  if (!mvhd || out[mvhd.start] !== 0) return out;
  const timescale = out.readUInt32BE(mvhd.start + 12);
  out.writeUInt32BE(Math.min(0xffffffff, Math.round(seconds * timescale)) >>> 0, mvhd.start + 16);
  return out;
}

/** Index a recorded file from its box headers, init, prft and moofs (mdat payloads are skipped, not read). */
async function indexFile(src: Source): Promise<FileIndex | undefined> {
  const r = await src.reader();
  try {
    let pos = 0;
    let ftyp: Buffer | undefined;
    let moov: Buffer | undefined;
    let tracks: TrackInfo[] = [];
    let main: TrackInfo | undefined;
    let wall: number | undefined;
    const frags: Frag[] = [];
    while (pos + 8 <= src.size) {
      const h = await r.read(pos, Math.min(16, src.size - pos));
      let size = h.readUInt32BE(0);
      const type = h.toString("latin1", 4, 8);
      if (size === 1 && h.length >= 16) size = Number(h.readBigUInt64BE(8));
      else if (size === 0) size = src.size - pos;
      // A box cut short: the end of a file still being written (or of a damaged one).
      if (size < 8 || pos + size > src.size) break;
      if (type === "ftyp" || type === "moov" || type === "prft" || type === "moof") {
        if (size > MAX_HEADER_BOX) break;
        // A copy: the reader's window buffer is not kept alive by the index.
        const box = Buffer.from(await r.read(pos, size));
        if (type === "ftyp") ftyp = box;
        else if (type === "moov") {
          moov = box;
          tracks = parseInit(box);
          main = tracks.find((t) => t.kind === "video") ?? tracks.find((t) => t.kind === "audio");
        } else if (type === "prft") wall = readProducerTime(box.subarray(8));
        else if (main) {
          // The fragment is whole only with its mdat.
          const mh = pos + size + 8 <= src.size ? await r.read(pos + size, 8) : undefined;
          const mdatSize = mh && mh.toString("latin1", 4, 8) === "mdat" ? mh.readUInt32BE(0) : 0;
          if (mdatSize < 8 || pos + size + mdatSize > src.size) break;
          const info = parseMoof(box, tracks);
          const m = info.find((t) => t.trackId === main!.id);
          const time = m
            ? m.baseTime / main.timescale
            : Math.min(...info.map((t) => t.baseTime / (tracks.find((x) => x.id === t.trackId)?.timescale ?? 1)));
          frags.push({
            offset: pos,
            size: size + mdatSize,
            moof: box,
            time,
            duration: m ? m.duration / main.timescale : 0,
            sync: m !== undefined && (main.kind !== "video" || m.firstSampleSync),
          });
          pos += size + mdatSize;
          continue;
        }
      }
      pos += size;
    }
    if (!ftyp || !moov || !main) return undefined;
    const config = Buffer.from(moov);
    const mvhd = children(config, 8, config.length).find((c) => c.type === "mvhd");
    if (mvhd && config[mvhd.start] === 0) config.writeUInt32BE(0, mvhd.start + 16);
    const end = frags.reduce((e, f) => Math.max(e, f.time + f.duration), 0);
    return { init: Buffer.concat([ftyp, moov]), config, tracks, main, wall, frags, end };
  } finally {
    await r.close();
  }
}

function plainSource(name: string, file: string, size: number, mtimeMs: number): Source {
  return {
    name,
    size,
    key: `file:${file}:${size}:${mtimeMs}`,
    async reader() {
      const fh: FileHandle = await open(file, "r");
      return windowed(
        async (pos, len) => {
          const b = Buffer.allocUnsafe(len);
          let n = 0;
          while (n < len) {
            const { bytesRead } = await fh.read(b, n, len - n, pos + n);
            if (bytesRead === 0) break;
            n += bytesRead;
          }
          return b.subarray(0, n);
        },
        64 * 1024,
        size,
        () => fh.close(),
      );
    },
    async open() {
      const fh = await open(file, "r");
      return {
        async readInto(buf, off, len, pos) {
          let n = 0;
          while (n < len) {
            const { bytesRead } = await fh.read(buf, off + n, len - n, pos + n);
            if (bytesRead === 0) break;
            n += bytesRead;
          }
          return n;
        },
        close: () => fh.close(),
      };
    },
  };
}

function casSource(cas: CasStore, name: string, id: string, size: number): Source {
  const get = async (start: number, end: number) => {
    const parts: Buffer[] = [];
    for await (const b of cas.get(id, { start, end })) parts.push(b);
    return Buffer.concat(parts);
  };
  return {
    name,
    size,
    key: `cas:${id}`,
    // Every store read verifies whole chunks: read a large window at a time.
    reader: async () =>
      windowed(
        (pos, len) => get(pos, pos + len),
        1024 * 1024,
        size,
        async () => {},
      ),
    open: async () => ({
      async readInto(buf, off, len, pos) {
        let n = 0;
        for await (const b of cas.get(id, { start: pos, end: pos + len })) n += b.copy(buf, off + n);
        return n;
      },
      close: async () => {},
    }),
  };
}

/** Positioned reads through one cached window of at least `window` bytes. */
function windowed(
  readAt: (pos: number, len: number) => Promise<Buffer>,
  window: number,
  size: number,
  close: () => Promise<void>,
): RandomReader {
  let buf: Buffer = Buffer.alloc(0);
  let at = 0;
  return {
    async read(pos, len) {
      if (pos < at || pos + len > at + buf.length) {
        at = pos;
        buf = await readAt(pos, Math.min(size - pos, Math.max(len, window)));
      }
      const b = buf.subarray(pos - at, pos - at + len);
      if (b.length < len) throw new Error("recorded file is shorter than it was");
      return b;
    },
    close,
  };
}
