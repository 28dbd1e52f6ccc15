/**
 * Pull sources (`stream start --source`): ffmpeg pulls rtsp://, rtmp://, srt://, http(s)://...m3u8 or a local
 * file and we publish it on a path. When the source drops, the pull reconnects with exponential backoff until
 * stopped; a source whose codecs would need transcoding fails for good with a clear error.
 */
import { existsSync } from "node:fs";
import { z } from "zod";
import { AmiError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import { redactUrl, scrubText } from "../core/redact.ts";
import { backoffMs } from "./ffmpeg.ts";
import { type Hub, validPath } from "./hub.ts";
import { FfmpegIngest } from "./ingest.ts";

export const pullStatusSchema = z.object({
  path: z.string(),
  source: z.string(),
  state: z.enum(["connecting", "live", "retrying", "failed", "stopped"]),
  retries: z.number().describe("reconnect attempts since the pull started"),
  lastError: z.string().nullable(),
  since: z.string().describe("ISO time the pull was started"),
  nextRetryS: z.number().nullable().describe("seconds until the next attempt (state retrying)"),
});
export type PullStatus = z.infer<typeof pullStatusSchema>;

export interface PullOptions {
  hub: Hub;
  ffmpegPath: string;
  retryInitialMs: number;
  retryMaxMs: number;
  stallMs: number;
  log: Logger;
  /** Called after a pull is started or stopped (the media service saves its state). */
  onChange?: () => void;
}

/** The path of a source URL; a malformed one is bad input (400), and its message never repeats the URL. */
function urlPath(source: string): string {
  try {
    return new URL(source).pathname;
  } catch {
    throw new AmiError("AMI_INVALID_INPUT", `source '${redactUrl(source)}' is not a valid URL`);
  }
}

/** ffmpeg input options per source kind: reconnect-friendly timeouts, TCP for RTSP (no UDP ports to open). */
export function inputArgs(source: string, stallMs: number): string[] {
  const us = String(stallMs * 1000);
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(source)?.[1]?.toLowerCase();
  switch (scheme) {
    case "rtsp":
    case "rtsps":
      return ["-rtsp_transport", "tcp", "-timeout", us, "-i", source];
    case "rtmp":
    case "rtmps":
      return ["-rw_timeout", us, "-i", source];
    case "srt":
      return ["-i", source];
    case "http":
    case "https":
      // A live playlist is read in real time; reconnect options cover a flaky origin between segments.
      return ["-rw_timeout", us, "-reconnect", "1", "-reconnect_streamed", "1", "-i", source];
    case "file":
    case undefined:
      // A file plays at its own pace (-re), as a live source would, and loops forever.
      return ["-re", "-stream_loop", "-1", "-i", scheme ? urlPath(source) : source];
    default:
      throw new AmiError(
        "AMI_INVALID_INPUT",
        `unsupported source '${redactUrl(source)}': use rtsp://, rtmp://, srt://, https://...m3u8 or a file`,
      );
  }
}

/** `rtsp://cam/live/stream1` -> `live/stream1`; a file `/x/clip.mp4` -> `live/clip`. */
export function defaultPath(source: string): string {
  const raw = /^[a-z]+:\/\//i.test(source) ? urlPath(source) : source;
  const last = raw.split("/").filter(Boolean).at(-1) ?? "";
  const name = last.replace(/\.[A-Za-z0-9]+$/, "").replace(/[^A-Za-z0-9_.~-]/g, "_");
  return `live/${name && name !== "." && name !== ".." ? name : "pull"}`;
}

class Pull {
  readonly path: string;
  readonly source: string;
  readonly since = new Date();
  state: PullStatus["state"] = "connecting";
  retries = 0;
  lastError: string | null = null;
  nextRetryAt: number | null = null;
  #ingest: FfmpegIngest | undefined;
  #stopped = false;
  #wake: (() => void) | undefined;
  readonly done: Promise<void>;

  constructor(path: string, source: string, o: PullOptions) {
    this.path = path;
    this.source = source;
    this.done = this.#loop(o);
  }

  async #loop(o: PullOptions): Promise<void> {
    const log = o.log.child({ pull: this.path });
    let failures = 0;
    while (!this.#stopped) {
      this.state = "connecting";
      const ingest = new FfmpegIngest({
        hub: o.hub,
        path: () => this.path,
        protocol: "pull",
        // The hub shows the publisher's remote in /api and errors: never the source's credentials.
        remote: redactUrl(this.source),
        ffmpegPath: o.ffmpegPath,
        input: inputArgs(this.source, o.stallMs),
        stallMs: o.stallMs,
        log,
        onPublish: () => {
          this.state = "live";
        },
      });
      this.#ingest = ingest;
      const r = await ingest.done;
      if (this.#stopped) break;
      this.lastError = scrubText(r.error) || "the source ended";
      if (r.permanent) {
        this.state = "failed";
        log.warn("pull failed for good", { source: redactUrl(this.source), error: this.lastError });
        return;
      }
      // A source that delivered media resets the backoff: it was a drop, not a dead address.
      failures = r.published ? 1 : failures + 1;
      this.retries++;
      const wait = backoffMs(failures, o.retryInitialMs, o.retryMaxMs);
      this.state = "retrying";
      this.nextRetryAt = Date.now() + wait;
      log.info("pull retrying", { source: redactUrl(this.source), inMs: wait, error: this.lastError });
      await new Promise<void>((r) => {
        const t = setTimeout(r, wait);
        this.#wake = () => {
          clearTimeout(t);
          r();
        };
      });
      this.nextRetryAt = null;
    }
  }

  stop(): Promise<void> {
    this.#stopped = true;
    this.#ingest?.stop();
    this.#wake?.();
    return this.done;
  }

  status(): PullStatus {
    return {
      path: this.path,
      source: redactUrl(this.source),
      state: this.state,
      retries: this.retries,
      lastError: this.lastError,
      since: this.since.toISOString(),
      nextRetryS: this.nextRetryAt === null ? null : Math.max(0, Math.round((this.nextRetryAt - Date.now()) / 1000)),
    };
  }
}

export class Pulls {
  readonly #byPath = new Map<string, Pull>();
  readonly #o: PullOptions;

  constructor(o: PullOptions) {
    this.#o = o;
  }

  start(source: string, path = defaultPath(source)): PullStatus {
    if (!validPath(path)) throw new AmiError("AMI_INVALID_INPUT", `invalid stream path '${path}'`);
    inputArgs(source, this.#o.stallMs); // rejects unknown schemes before anything runs
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(source) && !existsSync(source))
      throw new AmiError("AMI_INVALID_INPUT", `source '${redactUrl(source)}' is neither a URL nor an existing file`);
    const existing = this.#byPath.get(path);
    if (existing) {
      if (existing.state !== "failed")
        throw new AmiError("M_FORBIDDEN", `path '${path}' already pulls from ${redactUrl(existing.source)}`);
      this.#byPath.delete(path);
    }
    const busy = this.#o.hub.get(path);
    if (busy)
      throw new AmiError(
        "M_FORBIDDEN",
        `path '${path}' already has a publisher (${busy.publisher.protocol} from ${busy.publisher.remote})`,
      );
    const p = new Pull(path, source, this.#o);
    this.#byPath.set(path, p);
    this.#o.onChange?.();
    return p.status();
  }

  async stop(path: string): Promise<PullStatus> {
    const p = this.#byPath.get(path);
    if (!p) throw new AmiError("M_NOT_FOUND", `no pull on path '${path}'`);
    this.#byPath.delete(path);
    this.#o.onChange?.();
    await p.stop();
    return { ...p.status(), state: "stopped", nextRetryS: null };
  }

  get(path: string): PullStatus | undefined {
    return this.#byPath.get(path)?.status();
  }

  /** The pulls as they were asked for, real source URLs included: only for the saved state. */
  saved(): { path: string; source: string }[] {
    return [...this.#byPath.values()]
      .map((p) => ({ path: p.path, source: p.source }))
      .sort((a, b) => a.path.localeCompare(b.path));
  }

  list(): PullStatus[] {
    return [...this.#byPath.values()].map((p) => p.status()).sort((a, b) => a.path.localeCompare(b.path));
  }

  async close(): Promise<void> {
    await Promise.all([...this.#byPath.values()].map((p) => p.stop()));
    this.#byPath.clear();
  }
}
