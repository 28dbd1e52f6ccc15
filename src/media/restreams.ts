/**
 * Restream (`stream restream add|remove|list`): push a path to RTMP/RTMPS/SRT destinations, one ffmpeg per
 * destination (`-c copy`, no transcoding). Each destination has its own status and retries with exponential
 * backoff while the path is live; when the path has no publisher it waits, and resumes with the next one.
 */
import { z } from "zod";
import { AmiError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import { redactUrl, scrubText } from "../core/redact.ts";
import { backoffMs, lastLine, QUIET, runFfmpeg } from "./ffmpeg.ts";
import { nextStream, pause } from "./follow.ts";
import { type Hub, type Reader, validPath } from "./hub.ts";
import { configsReady, streamToFlv } from "./protocols/flv/from-stream.ts";

export const restreamStatusSchema = z.object({
  path: z.string(),
  to: z.string(),
  state: z.enum(["waiting", "connecting", "live", "retrying", "stopped"]),
  retries: z.number(),
  lastError: z.string().nullable(),
  bytesOut: z.number(),
  since: z.string(),
});
export type RestreamStatus = z.infer<typeof restreamStatusSchema>;

export interface RestreamOptions {
  hub: Hub;
  ffmpegPath: string;
  retryInitialMs: number;
  retryMaxMs: number;
  log: Logger;
  /** Called after a destination is added or removed (the media service saves its state). */
  onChange?: () => void;
}

/** The ffmpeg output for a destination URL: FLV over RTMP(S), MPEG-TS over SRT. */
export function outputArgs(to: string): string[] {
  const scheme = /^([a-z]+):\/\//i.exec(to)?.[1]?.toLowerCase();
  if (scheme === "rtmp" || scheme === "rtmps") return ["-f", "flv", to];
  if (scheme === "srt") return ["-f", "mpegts", to];
  throw new AmiError(
    "AMI_INVALID_INPUT",
    `unsupported destination '${redactUrl(to)}': use rtmp://, rtmps:// or srt://`,
  );
}

/** ffmpeg running this long without failing counts as connected. */
const LIVE_AFTER_MS = 1500;

class Destination {
  readonly path: string;
  readonly to: string;
  readonly since = new Date();
  state: RestreamStatus["state"] = "waiting";
  retries = 0;
  lastError: string | null = null;
  bytesOut = 0;
  readonly #ac = new AbortController();
  #closeReader: () => void = () => {};
  #reader: Reader | undefined;
  readonly done: Promise<void>;

  constructor(path: string, to: string, o: RestreamOptions) {
    this.path = path;
    this.to = to;
    this.done = this.#loop(o);
  }

  async #loop(o: RestreamOptions): Promise<void> {
    const log = o.log.child({ restream: this.path, to: redactUrl(this.to) });
    let failures = 0;
    const signal = this.#ac.signal;
    while (!signal.aborted) {
      this.state = "waiting";
      const stream = await nextStream(o.hub, this.path, signal);
      if (!stream) break;
      this.state = "connecting";
      const reader = stream.addReader("restream", redactUrl(this.to));
      this.#closeReader = () => reader.close();
      this.#reader = reader;
      await configsReady(stream, 3000);
      const args = [
        ...QUIET,
        ...["-probesize", "262144", "-analyzeduration", "1000000", "-f", "flv", "-i", "pipe:0"],
        ...["-map", "0:v?", "-map", "0:a?", "-c", "copy", ...outputArgs(this.to)],
      ];
      const ff = runFfmpeg(o.ffmpegPath, args);
      const live = setTimeout(() => {
        if (this.state === "connecting") this.state = "live";
      }, LIVE_AFTER_MS);
      // ffmpeg dying closes its stdin, which ends the pump; the reader's end ends ffmpeg's input.
      const exited = ff.exited.then((c) => {
        reader.close();
        return c;
      });
      await streamToFlv(stream, reader, ff.proc.stdin);
      reader.close();
      const code = await exited;
      clearTimeout(live);
      this.bytesOut += reader.bytesOut;
      this.#reader = undefined;
      if (signal.aborted) break;
      if (stream.ended && code === 0) {
        failures = 0;
        continue; // the publisher left: wait for the next one
      }
      // ffmpeg names the destination URL (stream key included) in its errors.
      this.lastError = scrubText(lastLine(ff.stderr())) || `ffmpeg exited with ${code}`;
      // A destination that was up resets the backoff: it dropped, it is not a dead address.
      failures = (this.state as RestreamStatus["state"]) === "live" ? 1 : failures + 1;
      this.retries++;
      this.state = "retrying";
      const wait = backoffMs(failures, o.retryInitialMs, o.retryMaxMs);
      log.warn("restream failed, retrying", { error: this.lastError, inMs: wait });
      await pause(wait, signal);
    }
    this.state = "stopped";
  }

  stop(): Promise<void> {
    this.#ac.abort();
    this.#closeReader();
    return this.done;
  }

  status(): RestreamStatus {
    return {
      path: this.path,
      to: redactUrl(this.to),
      state: this.state,
      retries: this.retries,
      lastError: this.lastError,
      bytesOut: this.bytesOut + (this.#reader?.bytesOut ?? 0),
      since: this.since.toISOString(),
    };
  }
}

export class Restreams {
  readonly #dests: Destination[] = [];
  readonly #o: RestreamOptions;

  constructor(o: RestreamOptions) {
    this.#o = o;
  }

  add(path: string, to: string): RestreamStatus {
    if (!validPath(path)) throw new AmiError("AMI_INVALID_INPUT", `invalid stream path '${path}'`);
    outputArgs(to);
    const existing = this.#dests.find((d) => d.path === path && d.to === to);
    if (existing) return existing.status();
    const d = new Destination(path, to, this.#o);
    d.done.catch((e) =>
      this.#o.log.error("restream failed", { path, to: redactUrl(to), error: scrubText((e as Error).message) }),
    );
    this.#dests.push(d);
    this.#o.onChange?.();
    return d.status();
  }

  /**
   * `to` is the destination as it was added, or as `list` shows it (redacted) when that names exactly one: the
   * operator removing a destination may only have the redacted form at hand.
   */
  async remove(path: string, to: string): Promise<RestreamStatus> {
    let i = this.#dests.findIndex((d) => d.path === path && d.to === to);
    if (i < 0) {
      const shown = this.#dests.flatMap((d, j) => (d.path === path && redactUrl(d.to) === to ? [j] : []));
      if (shown.length === 1) i = shown[0] as number;
    }
    const d = this.#dests[i];
    if (!d) throw new AmiError("M_NOT_FOUND", `path '${path}' is not restreamed to ${redactUrl(to)}`);
    this.#dests.splice(i, 1);
    this.#o.onChange?.();
    await d.stop().catch(() => {});
    return d.status();
  }

  /** Destinations as they were added, real URLs included: only for the saved state. */
  saved(): { path: string; to: string }[] {
    return this.#dests.map((d) => ({ path: d.path, to: d.to }));
  }

  list(path?: string): RestreamStatus[] {
    return this.#dests.filter((d) => path === undefined || d.path === path).map((d) => d.status());
  }

  async close(): Promise<void> {
    await Promise.all(this.#dests.map((d) => d.stop().catch(() => {})));
    this.#dests.length = 0;
  }
}
