/**
 * Recording (`stream record start|stop`): a path's frames go through ffmpeg's segment muxer (remux, no
 * transcoding) into `<dir>/<path>/<start ms>-<n>.mp4`, one file per `recordSegmentSeconds` (cut on keyframes).
 * A recording follows its path across publishers until stopped. Retention (max age, max bytes per path) deletes
 * the oldest finished files.
 */
import { readdirSync, rmSync, statSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { AmiError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import { lastLine, QUIET, runFfmpeg } from "./ffmpeg.ts";
import { nextStream, untilEnded } from "./follow.ts";
import { type Hub, validPath } from "./hub.ts";
import { configsReady, streamToFlv } from "./protocols/flv/from-stream.ts";

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
  ffmpegPath: string;
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
  #stopFfmpeg: () => void = () => {};
  readonly done: Promise<void>;

  constructor(path: string, o: RecordOptions) {
    this.path = path;
    this.dir = join(o.dir, path);
    this.done = this.#loop(o);
  }

  async #loop(o: RecordOptions): Promise<void> {
    const log = o.log.child({ recording: this.path });
    await mkdir(this.dir, { recursive: true });
    const pruner = setInterval(() => prune(this.dir, o.maxAgeSeconds, o.maxBytes), 2000);
    try {
      for (;;) {
        const stream = await nextStream(o.hub, this.path, this.#ac.signal);
        if (!stream) break;
        this.state = "recording";
        const reader = stream.addReader("record", "recorder");
        await configsReady(stream, 3000);
        const args = [
          ...QUIET,
          ...["-probesize", "262144", "-analyzeduration", "1000000", "-f", "flv", "-i", "pipe:0"],
          ...["-map", "0:v?", "-map", "0:a?", "-c", "copy", "-f", "segment"],
          ...["-segment_time", String(o.segmentSeconds), "-segment_format", "mp4", "-reset_timestamps", "1"],
          join(this.dir, `${Date.now()}-%05d.mp4`),
        ];
        const ff = runFfmpeg(o.ffmpegPath, args);
        // On stop, closing the reader ends ffmpeg's input so it finishes (and finalizes) the last file.
        this.#stopFfmpeg = () => reader.close();
        await streamToFlv(stream, reader, ff.proc.stdin);
        reader.close();
        const code = await ff.exited;
        if (code !== 0) {
          this.lastError = lastLine(ff.stderr()) || `ffmpeg exited with ${code}`;
          log.warn("recording ffmpeg failed", { error: this.lastError });
        }
        prune(this.dir, o.maxAgeSeconds, o.maxBytes);
        this.state = "waiting";
        if (this.#ac.signal.aborted) break;
        // The same stream still live after ffmpeg failed: wait for it to end rather than spin.
        await untilEnded(stream, this.#ac.signal);
      }
    } finally {
      clearInterval(pruner);
      this.state = "stopped";
    }
  }

  stop(): Promise<void> {
    this.#ac.abort();
    this.#stopFfmpeg();
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
