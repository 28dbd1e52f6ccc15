/**
 * Recording (`stream record start|stop`): a path's frames go through the in-process CMAF muxer (remux, no
 * transcoding, no ffmpeg process) into fragmented MP4 files `<dir>/<path>/<start ms>-<n>.mp4` (record-file.ts),
 * one per `recordSegmentSeconds` (cut on keyframes) and one more at each codec configuration change. Any codec
 * the muxer packages is recorded (H.264, H.265, AAC, Opus). A recording follows its path across publishers until
 * stopped (each publisher starts a new file). Retention (max age, max bytes per path) deletes the oldest files.
 */
import { readdirSync, rmSync, statSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
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

  constructor(path: string, o: RecordOptions) {
    this.path = path;
    this.dir = join(o.dir, path);
    this.done = this.#loop(o);
  }

  async #loop(o: RecordOptions): Promise<void> {
    const log = o.log.child({ recording: this.path });
    await mkdir(this.dir, { recursive: true });
    const pruner = setInterval(() => {
      try {
        prune(this.dir, o.maxAgeSeconds, o.maxBytes);
      } catch (e) {
        log.warn("recording retention: cannot delete", { error: (e as Error).message });
      }
    }, 2000);
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
        });
        const error = await record(reader, files, (kind, reason) => log.warn(`${kind} track not recorded`, { reason }));
        reader.close();
        await files.close();
        if (error) {
          this.lastError = error;
          log.warn("cannot record stream", { error });
        }
        prune(this.dir, o.maxAgeSeconds, o.maxBytes);
        this.state = "waiting";
        if (this.#ac.signal.aborted) break;
        // The same stream still live after its frames could not be muxed: wait for it to end rather than spin.
        await untilEnded(stream, this.#ac.signal);
      }
    } finally {
      clearInterval(pruner);
      this.state = "stopped";
    }
  }

  stop(): Promise<void> {
    this.#ac.abort();
    this.#stopReader();
    return this.done;
  }

  status(): RecordingStatus {
    const files = listFiles(this.dir);
    return {
      path: this.path,
      state: this.state,
      dir: this.dir,
      files: files.length,
      bytes: files.reduce((a, f) => a + f.bytes, 0),
      since: this.since.toISOString(),
      lastError: this.lastError,
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

  constructor(o: RecordOptions) {
    this.#o = o;
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
