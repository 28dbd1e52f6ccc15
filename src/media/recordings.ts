/**
 * Recording (`stream record start|stop`): a path's frames go through the in-process CMAF muxer (remux, no
 * transcoding, no ffmpeg process) into fragmented MP4 files `<dir>/<path>/<start ms>-<n>.mp4` (record-file.ts),
 * one per `recordSegmentSeconds` (cut on keyframes) and one more at each codec configuration change. Any codec
 * the muxer packages is recorded (H.264, H.265, AAC, Opus). A recording follows its path across publishers until
 * stopped (each publisher starts a new file). Retention (max age, max bytes per path) deletes the oldest files.
 *
 * With a content-addressed store (the media service passes the runtime home's), a file is written as a plain file
 * until it is finished, then streamed into the store (held as "media.recording:<path>/<file>"), listed in
 * `<dir>/.cas/<path>.json` (file name -> object id) and deleted; retention releases the hold and lets GC free
 * the bytes. A file that cannot go into the store (a full disk) stays a plain file and is tried again.
 */
import {
  createReadStream,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { z } from "zod";
import type { CasStore } from "../cas/types.ts";
import { AmiError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import { nextStream, untilEnded } from "./follow.ts";
import { type Hub, type Reader, validPath } from "./hub.ts";
import { CmafMuxer } from "./protocols/fmp4/muxer.ts";
import { RecordFiles } from "./record-file.ts";

export const recordingStatusSchema = z.object({
  path: z.string(),
  state: z.enum(["waiting", "recording", "stopped"]).describe("waiting: no publisher on the path right now"),
  dir: z.string(),
  files: z.number(),
  bytes: z.number(),
  since: z.string(),
  lastError: z.string().nullable(),
  /** Files in the content-addressed store (the rest are plain files in `dir`, the newest being written). */
  stored: z.number(),
  segments: z
    .array(
      z.object({
        name: z.string(),
        bytes: z.number(),
        id: z.string().nullable().describe("content-addressed store object id (`cas get`); null: a plain file in dir"),
      }),
    )
    .describe("oldest first"),
});
export type RecordingStatus = z.infer<typeof recordingStatusSchema>;

export interface RecordOptions {
  hub: Hub;
  dir: string;
  /** Unused since recordings are muxed in process (kept so callers need not change). */
  ffmpegPath?: string;
  segmentSeconds: number;
  maxAgeSeconds: number;
  maxBytes: number;
  log: Logger;
  /** Called after a recording is started or stopped (the media service saves its state). */
  onChange?: () => void;
  /** Where finished files go; without one they stay plain files in `dir`. */
  cas?: CasStore;
}

/** A finished file in the content-addressed store. */
interface Stored {
  id: string;
  bytes: number;
  mtimeMs: number;
}

export const recordingHold = (path: string, name: string) => `media.recording:${path}/${name}`;

/** GC after retention released something, at most this often (it walks the whole store). */
const GC_EVERY_MS = 30_000;
const lastGc = new WeakMap<CasStore, number>();
function maybeGc(cas: CasStore, log: Logger): void {
  const now = Date.now();
  if (now - (lastGc.get(cas) ?? 0) < GC_EVERY_MS) return;
  lastGc.set(cas, now);
  cas.gc().catch((e) => log.debug("recording retention: gc skipped", { error: (e as Error).message }));
}

interface RecFile {
  name: string;
  bytes: number;
  mtimeMs: number;
}

function listFiles(dir: string): RecFile[] {
  try {
    return readdirSync(dir)
      .filter((n) => n.endsWith(".mp4"))
      .sort()
      .map((name) => {
        const st = statSync(join(dir, name));
        return { name, bytes: st.size, mtimeMs: st.mtimeMs };
      });
  } catch {
    return [];
  }
}

/** Delete the oldest files past the age or size limit; the newest file (possibly being written) is kept. */
export function prune(dir: string, maxAgeSeconds: number, maxBytes: number, now = Date.now()): string[] {
  const files = listFiles(dir);
  const removed: string[] = [];
  let total = files.reduce((a, f) => a + f.bytes, 0);
  for (const f of files.slice(0, -1)) {
    const old = maxAgeSeconds > 0 && now - f.mtimeMs > maxAgeSeconds * 1000;
    if (!old && !(maxBytes > 0 && total > maxBytes)) continue;
    rmSync(join(dir, f.name), { force: true });
    total -= f.bytes;
    removed.push(f.name);
  }
  return removed;
}

class Recording {
  readonly path: string;
  readonly dir: string;
  readonly since = new Date();
  state: RecordingStatus["state"] = "waiting";
  lastError: string | null = null;
  readonly #ac = new AbortController();
  #stopReader: () => void = () => {};
  readonly done: Promise<void>;
  readonly #o: RecordOptions;
  readonly #indexPath: string;
  /** Finished files in the store, by file name. */
  readonly #stored: Map<string, Stored>;
  #files: RecordFiles | undefined;
  #ingesting: Promise<void> = Promise.resolve();
  #ingestQueued = false;

  constructor(path: string, o: RecordOptions) {
    this.path = path;
    this.#o = o;
    this.dir = join(o.dir, path);
    this.#indexPath = join(o.dir, ".cas", `${path}.json`);
    this.#stored = o.cas ? this.#loadIndex() : new Map();
    this.done = this.#loop(o);
  }

  #loadIndex(): Map<string, Stored> {
    try {
      return new Map(Object.entries(JSON.parse(readFileSync(this.#indexPath, "utf8")) as Record<string, Stored>));
    } catch {
      return new Map();
    }
  }

  #saveIndex(): void {
    mkdirSync(dirname(this.#indexPath), { recursive: true });
    const tmp = `${this.#indexPath}.${process.pid}.tmp`;
    try {
      writeFileSync(tmp, JSON.stringify(Object.fromEntries(this.#stored)));
      renameSync(tmp, this.#indexPath);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw e;
    }
  }

  /** Move finished files into the store (one pass at a time; a pass asked for meanwhile runs after). */
  ingest(): Promise<void> {
    const cas = this.#o.cas;
    if (!cas || this.#ingestQueued) return this.#ingesting;
    this.#ingestQueued = true;
    this.#ingesting = this.#ingesting.then(async () => {
      this.#ingestQueued = false;
      for (const f of listFiles(this.dir)) {
        if (this.#files?.busy.has(f.name)) continue;
        const file = join(this.dir, f.name);
        const hold = recordingHold(this.path, f.name);
        try {
          if (!this.#stored.has(f.name)) {
            const r = await cas.put(createReadStream(file, { highWaterMark: 1024 * 1024 }), { hold });
            this.#stored.set(f.name, { id: r.id, bytes: r.size, mtimeMs: f.mtimeMs });
            try {
              this.#saveIndex();
            } catch (e) {
              this.#stored.delete(f.name);
              await cas.release(r.id, hold).catch(() => {});
              throw e;
            }
          }
          rmSync(file, { force: true });
        } catch (e) {
          // A full disk: the file stays as it is and the next pass tries again.
          this.lastError = `cannot store ${f.name}: ${(e as Error).message}`;
          this.#o.log.warn("recording: cannot move a finished file into the store", {
            recording: this.path,
            error: (e as Error).message,
          });
          break;
        }
      }
    });
    return this.#ingesting;
  }

  /** Retention over plain files and stored ones alike, oldest first; the newest is kept. */
  #prune(): void {
    const { maxAgeSeconds, maxBytes, cas } = this.#o;
    if (!cas) {
      prune(this.dir, maxAgeSeconds, maxBytes);
      return;
    }
    const now = Date.now();
    const all = this.#segments();
    let total = all.reduce((a, f) => a + f.bytes, 0);
    let released = false;
    for (const f of all.slice(0, -1)) {
      const old = maxAgeSeconds > 0 && now - f.mtimeMs > maxAgeSeconds * 1000;
      if (!old && !(maxBytes > 0 && total > maxBytes)) continue;
      if (f.id) {
        const entry = this.#stored.get(f.name)!;
        this.#stored.delete(f.name);
        try {
          this.#saveIndex();
        } catch (e) {
          this.#stored.set(f.name, entry); // still listed and held: tried again at the next pass
          throw e;
        }
        cas.release(f.id, recordingHold(this.path, f.name)).catch(() => {});
        released = true;
      } else if (!this.#files?.busy.has(f.name)) rmSync(join(this.dir, f.name), { force: true });
      total -= f.bytes;
    }
    if (released) maybeGc(cas, this.#o.log);
  }

  #segments(): { name: string; bytes: number; mtimeMs: number; id: string | null }[] {
    const plain = listFiles(this.dir).filter((f) => !this.#stored.has(f.name));
    return [
      ...plain.map((f) => ({ ...f, id: null })),
      ...[...this.#stored].map(([name, s]) => ({ name, bytes: s.bytes, mtimeMs: s.mtimeMs, id: s.id })),
    ].sort((a, b) => a.name.localeCompare(b.name));
  }

  async #loop(o: RecordOptions): Promise<void> {
    const log = o.log.child({ recording: this.path });
    await mkdir(this.dir, { recursive: true });
    const pruner = setInterval(() => {
      void this.ingest();
      try {
        this.#prune();
      } catch (e) {
        log.warn("recording retention: cannot delete", { error: (e as Error).message });
      }
    }, 2000);
    void this.ingest(); // what an earlier run (or a crash) left

    try {
      for (;;) {
        const stream = await nextStream(o.hub, this.path, this.#ac.signal);
        if (!stream) break;
        this.state = "recording";
        const reader = stream.addReader("record", "recorder");
        // On stop, closing the reader lets the queued frames drain, then the last file is finished.
        this.#stopReader = () => reader.close();
        const files = new RecordFiles({
          dir: this.dir,
          segmentSeconds: o.segmentSeconds,
          startMs: Date.now(),
          onError: (e) => {
            this.lastError = e.message;
            log.warn("recording write failed", { error: e.message });
          },
          onFinished: () => void this.ingest(),
        });
        this.#files = files;
        const error = await record(reader, files, (kind, reason) => log.warn(`${kind} track not recorded`, { reason }));
        reader.close();
        await files.close();
        if (error) {
          this.lastError = error;
          log.warn("cannot record stream", { error });
        }
        await this.ingest();
        this.#prune();
        this.state = "waiting";
        if (this.#ac.signal.aborted) break;
        // The same stream still live after its frames could not be muxed: wait for it to end rather than spin.
        await untilEnded(stream, this.#ac.signal);
      }
    } finally {
      clearInterval(pruner);
      await this.ingest().catch(() => {});
      this.state = "stopped";
    }
  }

  stop(): Promise<void> {
    this.#ac.abort();
    this.#stopReader();
    return this.done;
  }

  status(): RecordingStatus {
    const segments = this.#segments();
    return {
      path: this.path,
      state: this.state,
      dir: this.dir,
      files: segments.length,
      bytes: segments.reduce((a, f) => a + f.bytes, 0),
      since: this.since.toISOString(),
      lastError: this.lastError,
      stored: this.#stored.size,
      segments: segments.map(({ name, bytes, id }) => ({ name, bytes, id })),
    };
  }
}

/**
 * A reader's frames through a CMAF muxer into `files` until the reader ends; the error message when a frame
 * cannot be muxed (that publish's recording ends there, the process stays up).
 */
async function record(
  reader: Reader,
  files: RecordFiles,
  skipped: (kind: string, reason: string) => void,
): Promise<string | undefined> {
  // One-second fragments: what a crash can lose, and small enough writes.
  const muxer = new CmafMuxer(1, {
    init: (ftyp, moov) => files.init(ftyp, moov),
    fragment: (moof, mdat) => files.fragment(moof, mdat),
    restart: () => files.restart(),
    skipped,
  });
  try {
    for (;;) {
      const f = reader.poll() ?? (await reader.next());
      if (!f) break;
      muxer.push(f);
    }
    muxer.end();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

export class Recordings {
  readonly #byPath = new Map<string, Recording>();
  readonly #o: RecordOptions;
  /** Where every path's recordings go (`<dir>/<path>/`; playback.ts reads them there). */
  readonly dir: string;

  constructor(o: RecordOptions) {
    this.#o = o;
    this.dir = o.dir;
  }

  start(path: string): RecordingStatus {
    if (!validPath(path)) throw new AmiError("AMI_INVALID_INPUT", `invalid stream path '${path}'`);
    const existing = this.#byPath.get(path);
    if (existing) return existing.status();
    const r = new Recording(path, this.#o);
    r.done.catch((e) => this.#o.log.error("recording failed", { path, error: (e as Error).message }));
    this.#byPath.set(path, r);
    this.#o.onChange?.();
    return r.status();
  }

  async stop(path: string): Promise<RecordingStatus> {
    const r = this.#byPath.get(path);
    if (!r) throw new AmiError("M_NOT_FOUND", `no recording on path '${path}'`);
    this.#byPath.delete(path);
    this.#o.onChange?.();
    await r.stop().catch(() => {});
    return r.status();
  }

  get(path: string): RecordingStatus | undefined {
    return this.#byPath.get(path)?.status();
  }

  list(): RecordingStatus[] {
    return [...this.#byPath.values()].map((r) => r.status()).sort((a, b) => a.path.localeCompare(b.path));
  }

  async close(): Promise<void> {
    await Promise.all([...this.#byPath.values()].map((r) => r.stop().catch(() => {})));
    this.#byPath.clear();
  }
}
