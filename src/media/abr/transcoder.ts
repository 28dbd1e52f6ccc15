/**
 * One source publisher's ABR ladder: a hub reader feeds the source as FLV to one ffmpeg (ladder.ts), and each
 * rung's FLV pipe is published back into the hub as `<path>/<name>`, so every output (HLS, LL-HLS, DASH, WHEP,
 * RTMP play, recording, restream) works per rendition. The reader's bounded queue keeps a slow encoder from
 * ever holding up the source. ffmpeg failing while the source is live is retried with backoff; the ladder
 * stops when the source's publisher leaves (the next publisher gets a new Transcoder).
 */
import type { Readable } from "node:stream";
import { z } from "zod";
import type { Logger } from "../../core/logger.ts";
import { backoffMs, lastLine, runFfmpeg } from "../ffmpeg.ts";
import { pause } from "../follow.ts";
import type { Hub, MediaStream } from "../hub.ts";
import { FlvDemuxer, type FlvTag } from "../protocols/flv/demux.ts";
import { configsReady, streamToFlv } from "../protocols/flv/from-stream.ts";
import { TAG_AUDIO, TAG_VIDEO } from "../protocols/flv/tag.ts";
import { flvToStream } from "../protocols/flv/to-stream.ts";
import type { EncoderChoice } from "./encoders.ts";
import { ladderArgs, planRungs, type Rung } from "./ladder.ts";

export const renditionStatusSchema = z.object({
  name: z.string(),
  /** The rendition's own stream path (<source path>/<name>). */
  path: z.string(),
  height: z.number(),
  /** Measured from the rendition's H.264 headers (null until it runs). */
  width: z.number().nullable(),
  videoBitrate: z.string(),
  state: z.enum(["waiting", "running", "skipped", "failed", "stopped"]),
  lastError: z.string().nullable(),
});
export type RenditionStatus = z.infer<typeof renditionStatusSchema>;

export interface TranscoderOptions {
  hub: Hub;
  ffmpegPath: string;
  /** The encoder (detected once, cached). */
  encoder: () => Promise<EncoderChoice>;
  retryInitialMs: number;
  retryMaxMs: number;
  log: Logger;
}

/** Publishing from a stream that may never have both codec headers waits this long for them. */
const CONFIG_WAIT_MS = 3000;
/** ffmpeg gets this long to flush and exit after its input ends. */
const FLUSH_MS = 5000;

export class Rendition {
  readonly rung: Rung;
  readonly path: string;
  state: RenditionStatus["state"] = "waiting";
  lastError: string | null = null;
  stream: MediaStream | undefined;

  constructor(rung: Rung, path: string) {
    this.rung = rung;
    this.path = path;
  }

  status(): RenditionStatus {
    const r = this.rung;
    const width = this.stream?.stats.width ?? null;
    const { state, lastError } = this;
    return { name: r.name, path: this.path, height: r.height, width, videoBitrate: r.videoBitrate, state, lastError };
  }
}

/** Demux one rung's FLV pipe into its hub path; resolves (with the rendition's stream ended) when the pipe ends. */
function publishRendition(pipe: Readable, r: Rendition, hub: Hub, codec: string): Promise<void> {
  const demux = new FlvDemuxer();
  let broken = false;
  /** onMetaData comes before the first media tag, i.e. before the path is taken. */
  let metadata: FlvTag | undefined;
  return new Promise((resolve) => {
    // The pipe is always drained, even for a rendition that failed: a full pipe would stall every rung.
    pipe.on("data", (d: Buffer) => {
      if (broken) return;
      try {
        for (const tag of demux.push(d)) {
          if (!r.stream && tag.type !== TAG_VIDEO && tag.type !== TAG_AUDIO) {
            metadata = tag;
            continue;
          }
          if (!r.stream) {
            r.stream = hub.publish(r.path, { protocol: "abr", remote: `${codec} ${r.rung.name}`, since: Date.now() });
            // lastError stays: after a restart it tells why the rendition had stopped.
            r.state = "running";
            if (metadata) flvToStream(metadata, r.stream);
          }
          flvToStream(tag, r.stream);
        }
      } catch (e) {
        broken = true;
        r.state = "failed";
        r.lastError = (e as Error).message;
      }
    });
    pipe.once("error", () => {});
    pipe.once("close", () => {
      r.stream?.end();
      resolve();
    });
  });
}

export class Transcoder {
  readonly source: MediaStream;
  readonly renditions: Rendition[];
  encoder: EncoderChoice | null = null;
  /** ffmpeg runs that failed while the source was live (each retried). */
  restarts = 0;
  readonly done: Promise<void>;
  readonly #ac = new AbortController();
  #stop: () => void = () => {};
  #pid: number | undefined;

  constructor(source: MediaStream, ladder: Rung[], o: TranscoderOptions) {
    this.source = source;
    this.renditions = ladder.map((r) => new Rendition(r, `${source.path}/${r.name}`));
    source.once("end", () => this.#ac.abort());
    this.done = this.#loop(o).catch((e) => {
      o.log.error("abr ladder failed", { path: source.path, error: (e as Error).message });
      this.#settle("failed", (e as Error).message);
    });
  }

  /** The running ffmpeg's process id (undefined between runs). */
  get pid(): number | undefined {
    return this.#pid;
  }

  /** The server is closing: stop ffmpeg and end the renditions. */
  stop(): Promise<void> {
    this.#ac.abort();
    this.#stop();
    return this.done;
  }

  async #loop(o: TranscoderOptions): Promise<void> {
    const signal = this.#ac.signal;
    const log = o.log.child({ abr: this.source.path });
    const enc = await o.encoder();
    this.encoder = enc;
    if (!enc.ok) return this.#settle("failed", enc.error);
    await configsReady(this.source, CONFIG_WAIT_MS);
    const height = this.source.stats.height;
    const plan = planRungs(
      this.renditions.map((r) => r.rung),
      height,
    );
    for (const r of this.renditions)
      if (plan.skipped.includes(r.rung)) {
        r.state = "skipped";
        r.lastError = height ? `above the source's ${height}p` : "the source has no (readable) H.264 video";
      }
    const run = this.renditions.filter((r) => plan.run.includes(r.rung));
    let failures = 0;
    while (run.length > 0 && !signal.aborted) {
      const error = await this.#runOnce(run, enc, o);
      if (signal.aborted) break;
      // A ladder that was up resets the backoff: it crashed, it is not a setup that can never work.
      failures = run.some((r) => r.state === "running") ? 1 : failures + 1;
      this.restarts++;
      for (const r of run) {
        // A rendition that failed on its own (its path was taken, its pipe broke) keeps its own reason.
        if (r.state !== "failed") r.lastError = error;
        r.state = "failed";
      }
      const wait = backoffMs(failures, o.retryInitialMs, o.retryMaxMs);
      log.warn("abr ffmpeg failed, retrying", { error, inMs: wait });
      await pause(wait, signal);
    }
    for (const r of run) if (r.state !== "failed") r.state = "stopped";
  }

  /** One ffmpeg run; resolves with why it ended ("" when the source simply ended). */
  async #runOnce(run: Rendition[], enc: EncoderChoice, o: TranscoderOptions): Promise<string> {
    for (const r of run) {
      r.state = "waiting";
      r.stream = undefined;
    }
    const reader = this.source.addReader("abr", "transcoder");
    const ff = runFfmpeg(
      o.ffmpegPath,
      ladderArgs(
        enc,
        run.map((r) => r.rung),
      ),
      run.length,
    );
    this.#stop = () => {
      reader.close();
      ff.stop(FLUSH_MS);
    };
    this.#pid = ff.proc.pid;
    const published = run.map((r, i) => publishRendition(ff.proc.stdio[3 + i] as Readable, r, o.hub, enc.codec));
    // ffmpeg dying closes its stdin, which ends the pump; the source ending ends ffmpeg's input.
    const exited = ff.exited.then((c) => {
      reader.close();
      return c;
    });
    await streamToFlv(this.source, reader, ff.proc.stdin);
    reader.close();
    const flush = setTimeout(() => ff.stop(), FLUSH_MS);
    const code = await exited;
    clearTimeout(flush);
    // The pipes close with ffmpeg; should one not, its rendition is ended anyway.
    await Promise.race([Promise.all(published), new Promise((r) => setTimeout(r, FLUSH_MS).unref())]);
    for (const r of run) r.stream?.end();
    this.#stop = () => {};
    this.#pid = undefined;
    if (this.#ac.signal.aborted) return "";
    // Killed by a signal (OOM killer, an operator): whatever ffmpeg last logged is not the reason.
    if (code === null) return "ffmpeg was killed while the source was live";
    return lastLine(ff.stderr()) || `ffmpeg exited with ${code} while the source was live`;
  }

  /** Every rendition not skipped ends in `state`. */
  #settle(state: "failed" | "stopped", error: string | null): void {
    for (const r of this.renditions)
      if (r.state !== "skipped") {
        r.state = state;
        r.lastError = error;
      }
  }
}
