/**
 * Recording files: the sink of a recording's CMAF muxer. Each file is a complete fragmented MP4 — the init
 * segment (ftyp + moov) then the fragments — named `<start ms>-<n>.mp4`. A file is cut before the first fragment
 * that starts on a keyframe once it holds `segmentSeconds` of media, and on a codec configuration change (the new
 * file gets the new init segment). Every fragment is written as it arrives, so a crash loses at most the fragment
 * being muxed; a cleanly closed file also gets its duration in mvhd (players need not scan the fragments).
 *
 * A failed write (a full disk) never leaves a broken file behind: the file is cut back to its last whole fragment,
 * or deleted when it holds none; new files are tried again after FAIL_PAUSE_MS, so the recording goes on by
 * itself once there is space.
 *
 * Fragments carry the stream's decode times (tfdt); each file rebases them so it starts at 0, as ffmpeg's
 * `-reset_timestamps 1` did: one offset in seconds for all tracks keeps audio and video in sync.
 *
 * Each file also says when it was recorded: a `prft` box (ISO/IEC 14496-12 ProducerReferenceTimeBox) between
 * the init segment and the first fragment gives the wall-clock time (NTP format) of the file's media time 0.
 * Within one run of the muxer (until a codec change restarts its timeline) the times come from one anchor plus
 * the media time, so consecutive files join exactly; playback (playback.ts) places files on the clock with it.
 */
import { type FileHandle, open, rm } from "node:fs/promises";
import { join } from "node:path";
import { parseInit, parseMoof, type TrackInfo } from "./protocols/fmp4/boxes.ts";
import type { MuxerSink } from "./protocols/fmp4/muxer.ts";

/** Keyframes land a few ms off whole seconds (millisecond clocks): cut when this close to the target. */
const CUT_SLACK_S = 0.01;
/** A disk slower than the stream: past this many bytes waiting to be written, media is dropped (bounded memory). */
const MAX_QUEUED_BYTES = 64 * 1024 * 1024;
/** After a failed write, no new file for this long: a full disk is not hammered with creates at every keyframe. */
const FAIL_PAUSE_MS = 2000;

interface OpenFile {
  name: string;
  path: string;
  handle: Promise<FileHandle>;
  /** Bytes written so far, and up to the end of the last whole unit (init segment or fragment). */
  written: number;
  good: number;
  /** Length of the init segment: a file no longer than this holds no media. */
  initBytes: number;
  /** Decode-time offset of the file's start, in seconds. */
  base: number;
  /** Media in the file, in main-track ticks. */
  mainTicks: number;
  /** The moov's offset in the file (for the duration patch on close). */
  moovAt: number;
}

export interface RecordFileOptions {
  dir: string;
  segmentSeconds: number;
  /** The `<start ms>` of the file names (one run of a recording: one publisher). */
  startMs: number;
  /** A write failed: the recording reports it; that file is given up, the next cut opens a new one. */
  onError(e: Error): void;
  /** A file is finished (closed whole, or cut back after a failure): nothing writes to it any more. */
  onFinished?(name: string): void;
}

export class RecordFiles implements MuxerSink {
  readonly #o: RecordFileOptions;
  #init: Buffer | undefined;
  #moovAt = 0;
  #tracks: TrackInfo[] = [];
  #main: TrackInfo | undefined;
  #file: OpenFile | undefined;
  #n = 0;
  /** Writes in order; close awaits them. */
  #chain: Promise<void> = Promise.resolve();
  /** Files a write failed on: their remaining writes are dropped. */
  readonly #failed = new WeakSet<OpenFile>();
  #queued = 0;
  #pausedUntil = 0;
  /** Wall-clock time (s) at media time `base` (s): set when the muxer's timeline (re)starts. */
  #anchor: { wall: number; base: number } | undefined;
  /** Files opened and not yet finished (the recording leaves them alone). */
  readonly busy = new Set<string>();

  constructor(o: RecordFileOptions) {
    this.#o = o;
  }

  init(ftyp: Buffer, moov: Buffer): void {
    this.#closeFile();
    this.#init = Buffer.concat([ftyp, moov]);
    this.#moovAt = ftyp.length;
    this.#tracks = parseInit(moov);
    this.#main = this.#tracks.find((t) => t.kind === "video") ?? this.#tracks.find((t) => t.kind === "audio");
  }

  restart(): void {
    this.#closeFile();
    // The muxer's media time starts again at 0: the next file takes a new wall-clock anchor.
    this.#anchor = undefined;
  }

  skipped(): void {}

  fragment(moof: Buffer, mdat: Buffer): void {
    const main = this.#main;
    if (!this.#init || !main) return;
    if (this.#queued > MAX_QUEUED_BYTES) {
      // The file ends here; the next one starts at a keyframe once the disk has caught up.
      if (this.#file) this.#o.onError(new Error("recording dropped media: the disk is slower than the stream"));
      this.#closeFile();
      return;
    }
    const info = parseMoof(moof, this.#tracks);
    const m = info.find((t) => t.trackId === main.id);
    // Audio sent on its own (video stalled) is no place to cut: only a fragment with main-track media is.
    const cutPoint = m !== undefined && (main.kind !== "video" || m.firstSampleSync);
    let file = this.#file;
    if (file && cutPoint && file.mainTicks >= (this.#o.segmentSeconds - CUT_SLACK_S) * main.timescale) {
      this.#closeFile();
      file = undefined;
    }
    if (!file) {
      // A file must start decodable: wait for a keyframe (and, after a failure, for the pause to end).
      if (!cutPoint || Date.now() < this.#pausedUntil) return;
      file = this.#open(Math.min(...info.map((t) => t.baseTime / this.#timescale(t.trackId))));
    }
    for (const t of info) rebaseTfdt(moof, t.trackId, Math.round(file.base * this.#timescale(t.trackId)));
    file.mainTicks += m?.duration ?? 0;
    this.#write(file, moof, mdat);
  }

  /** Finish the open file; resolves once everything is written and closed. */
  async close(): Promise<void> {
    this.#closeFile();
    await this.#chain;
  }

  #timescale(trackId: number): number {
    return this.#tracks.find((t) => t.id === trackId)?.timescale ?? 1;
  }

  #open(base: number): OpenFile {
    const name = `${this.#o.startMs}-${String(this.#n++).padStart(5, "0")}.mp4`;
    const path = join(this.#o.dir, name);
    const handle = open(path, "wx+");
    // A failed open surfaces through the first write; avoid an unhandled rejection before that.
    handle.catch(() => {});
    this.#anchor ??= { wall: Date.now() / 1000, base };
    const prft = producerTime(this.#main?.id ?? 1, this.#anchor.wall + (base - this.#anchor.base));
    const initBytes = (this.#init as Buffer).length + prft.length;
    const file: OpenFile = {
      name,
      path,
      handle,
      base,
      mainTicks: 0,
      moovAt: this.#moovAt,
      written: 0,
      good: 0,
      initBytes,
    };
    this.#file = file;
    this.busy.add(name);
    this.#write(file, this.#init as Buffer, prft);
    return file;
  }

  #write(file: OpenFile, ...bufs: Buffer[]): void {
    const bytes = bufs.reduce((n, b) => n + b.length, 0);
    this.#queued += bytes;
    this.#chain = this.#chain.then(async () => {
      try {
        if (this.#failed.has(file)) return;
        const fh = await file.handle;
        for (const b of bufs) {
          // A write may be short: go on from where it stopped.
          for (let off = 0; off < b.length; ) {
            const n = (await fh.write(b, off, b.length - off)).bytesWritten;
            off += n;
            file.written += n;
          }
        }
        file.good = file.written;
      } catch (e) {
        await this.#fail(file, e as Error);
      } finally {
        this.#queued -= bytes;
      }
    });
  }

  /** Give `file` up: cut it back to its last whole fragment (delete it when none), close it, report `e`. */
  async #fail(file: OpenFile, e: Error): Promise<void> {
    this.#failed.add(file);
    this.#pausedUntil = Date.now() + FAIL_PAUSE_MS;
    // A failed file is closed here (#closeFile skips failed files).
    if (this.#file === file) this.#file = undefined;
    const fh = await file.handle.catch(() => undefined);
    if (fh) {
      // Shrinking needs no space, so this works on a full disk.
      if (file.good > file.initBytes) await fh.truncate(file.good).catch(() => {});
      await fh.close().catch(() => {});
    }
    if (file.good <= file.initBytes) await rm(file.path, { force: true }).catch(() => {});
    this.#finished(file);
    this.#o.onError(e);
  }

  #finished(file: OpenFile): void {
    if (this.busy.delete(file.name)) this.#o.onFinished?.(file.name);
  }

  #closeFile(): void {
    const file = this.#file;
    if (!file) return;
    this.#file = undefined;
    const main = this.#main;
    const ms = main ? Math.round((file.mainTicks * 1000) / main.timescale) : 0;
    this.#chain = this.#chain.then(async () => {
      const fh = await file.handle.catch(() => undefined);
      if (!fh || this.#failed.has(file)) return this.#finished(file);
      try {
        if (file.good <= file.initBytes) {
          // Not one fragment made it in: no file rather than an empty one.
          await fh.close().catch(() => {});
          await rm(file.path, { force: true });
          return;
        }
        await patchDuration(fh, file.moovAt, ms);
      } catch (e) {
        await this.#fail(file, e as Error);
      } finally {
        await fh.close().catch(() => {});
        this.#finished(file);
      }
    });
  }
}

/**
 * mvhd's duration (ms: the muxer's movie timescale is 1000): mvhd is the moov's first box, version 0, so the
 * field sits at a fixed offset (moov header 8, mvhd header 8, version/flags 4, creation 4, modification 4,
 * timescale 4).
 */
async function patchDuration(fh: FileHandle, moovAt: number, ms: number): Promise<void> {
  const head = Buffer.alloc(24);
  await fh.read(head, 0, 24, moovAt);
  if (head.toString("latin1", 12, 16) !== "mvhd" || head[16] !== 0) return;
  const b = Buffer.alloc(4);
  b.writeUInt32BE(ms >>> 0);
  await fh.write(b, 0, 4, moovAt + 32);
}

/** Seconds from the NTP epoch (1900) to the Unix epoch. */
export const NTP_UNIX_S = 2_208_988_800;

/** A version 1 `prft`: track `trackId`'s media time 0 is `wallS` (Unix seconds, fractional). */
export function producerTime(trackId: number, wallS: number): Buffer {
  const b = Buffer.alloc(32);
  b.writeUInt32BE(32, 0);
  b.write("prft", 4, "latin1");
  b.writeUInt32BE(0x01000000, 8); // version 1, flags 0
  b.writeUInt32BE(trackId, 12);
  const ntp = wallS + NTP_UNIX_S;
  const secs = Math.floor(ntp);
  b.writeUInt32BE(secs >>> 0, 16);
  b.writeUInt32BE(Math.min(0xffffffff, Math.round((ntp - secs) * 2 ** 32)) >>> 0, 20);
  b.writeBigUInt64BE(0n, 24); // media_time 0
  return b;
}

/** The Unix time (s) of a `prft` payload (after the box header), or undefined for another layout. */
export function readProducerTime(payload: Buffer): number | undefined {
  if (payload.length < 20) return undefined;
  const version = payload[0];
  const secs = payload.readUInt32BE(8);
  const frac = payload.readUInt32BE(12);
  const media = version === 1 ? Number(payload.readBigUInt64BE(16)) : payload.readUInt32BE(16);
  if (media !== 0 || secs === 0) return undefined;
  return secs + frac / 2 ** 32 - NTP_UNIX_S;
}

/** Subtract `by` from track `trackId`'s tfdt in `moof` (in place: the recorder owns its muxer's buffers). */
export function rebaseTfdt(moof: Buffer, trackId: number, by: number): void {
  forEachBox(moof, 8, moof.length, (type, start, end) => {
    if (type !== "traf") return;
    let id: number | undefined;
    forEachBox(moof, start, end, (t, s) => {
      if (t === "tfhd") id = moof.readUInt32BE(s + 4);
      if (t !== "tfdt" || id !== trackId) return;
      if (moof[s] === 1) {
        const v = Number(moof.readBigUInt64BE(s + 4));
        moof.writeBigUInt64BE(BigInt(Math.max(0, v - by)), s + 4);
      } else moof.writeUInt32BE(Math.max(0, moof.readUInt32BE(s + 4) - by), s + 4);
    });
  });
}

/** Each child box of [start, end): its type and payload range. */
function forEachBox(b: Buffer, start: number, end: number, fn: (type: string, start: number, end: number) => void) {
  let p = start;
  while (p + 8 <= end) {
    const size = b.readUInt32BE(p);
    if (size < 8 || p + size > end) return;
    fn(b.toString("latin1", p + 4, p + 8), p + 8, p + size);
    p += size;
  }
}
