/**
 * An ffmpeg-fed publisher: ffmpeg reads a source (a pull URL, an SRT session) and remuxes it to FLV on its stdout
 * (`-c copy`, no transcoding); we demux the tags and publish them on a hub path like an RTMP publisher would.
 * The path is taken when the first media tag arrives, so a busy path or a non-H.264/AAC source fails early
 * and clearly. A source that goes quiet for `stallMs` is stopped (ffmpeg alone may wait forever on a dead peer).
 */
import type { Logger } from "../core/logger.ts";
import { scrubText } from "../core/redact.ts";
import { lastLine, QUIET, runFfmpeg } from "./ffmpeg.ts";
import type { Hub, MediaStream } from "./hub.ts";
import { FlvDemuxer } from "./protocols/flv/demux.ts";
import { TAG_AUDIO, TAG_VIDEO } from "./protocols/flv/tag.ts";
import { flvToStream, unsupportedCodec } from "./protocols/flv/to-stream.ts";

export interface IngestOptions {
  hub: Hub;
  /** The hub path, read when the first media arrives (an SRT session learns it from its handshake). */
  path: () => string | undefined;
  protocol: string;
  remote: string;
  ffmpegPath: string;
  /** ffmpeg input options and `-i <url>`. */
  input: string[];
  stallMs: number;
  log: Logger;
  onPublish?: (stream: MediaStream) => void;
}

export interface IngestResult {
  /** Media reached the hub. */
  published: boolean;
  /** Why it ended (empty when the source simply finished). */
  error: string;
  /** Retrying cannot help (the codec is not H.264/AAC): the caller should give up. */
  permanent: boolean;
}

/** ffmpeg's messages when a codec cannot go into FLV without transcoding. */
const CODEC_ERRORS =
  /not (?:currently )?supported in container|not compatible with flv|Could not write header|codec not supported/i;

export class FfmpegIngest {
  readonly done: Promise<IngestResult>;
  stream: MediaStream | undefined;
  #error = "";
  #permanent = false;
  #stop: () => void = () => {};

  constructor(o: IngestOptions) {
    this.done = this.#run(o);
  }

  stop(reason = ""): void {
    if (reason && !this.#error) this.#error = reason;
    this.#stop();
  }

  async #run(o: IngestOptions): Promise<IngestResult> {
    const args = [
      ...QUIET,
      ...o.input,
      ...["-map", "0:v:0?", "-map", "0:a:0?", "-dn", "-sn", "-c", "copy"],
      ...["-f", "flv", "-flvflags", "no_duration_filesize", "pipe:1"],
    ];
    const ff = runFfmpeg(o.ffmpegPath, args);
    this.#stop = () => ff.stop();
    const demux = new FlvDemuxer();
    let lastData = Date.now();
    const fail = (why: string, permanent: boolean) => {
      if (!this.#error) this.#error = why;
      this.#permanent ||= permanent;
      ff.stop();
    };
    ff.proc.stdout.on("data", (d: Buffer) => {
      lastData = Date.now();
      if (this.#error) return;
      try {
        for (const tag of demux.push(d)) {
          if (tag.type !== TAG_VIDEO && tag.type !== TAG_AUDIO && !this.stream) continue;
          const bad = unsupportedCodec(tag);
          if (bad) return fail(`${bad}: only H.264 video and AAC audio are relayed (no transcoding)`, true);
          if (!this.stream) this.#publish(o);
          if (this.stream) flvToStream(tag, this.stream);
        }
      } catch (e) {
        fail((e as Error).message, false);
      }
    });
    const watchdog = setInterval(() => {
      if (Date.now() - lastData > o.stallMs)
        fail(`no data from the source for ${Math.round(o.stallMs / 1000)} s`, false);
    }, 1000);
    const code = await ff.exited;
    clearInterval(watchdog);
    this.stream?.end();
    const stderr = ff.stderr();
    if (!this.#error && code !== 0) {
      // ffmpeg names its input URL in errors: a pull's camera password or key must not reach status or logs.
      this.#error = scrubText(lastLine(stderr)) || `ffmpeg exited with ${code}`;
      if (CODEC_ERRORS.test(stderr)) {
        this.#permanent = true;
        this.#error = `${this.#error} (only H.264 video and AAC audio are relayed; no transcoding)`;
      }
    }
    if (this.#error) o.log.warn("ingest ended", { remote: o.remote, error: this.#error, code });
    return { published: !!this.stream, error: this.#error, permanent: this.#permanent };
  }

  #publish(o: IngestOptions): void {
    const path = o.path();
    if (!path) throw new Error("no stream path for this source");
    this.stream = o.hub.publish(path, { protocol: o.protocol, remote: o.remote, since: Date.now() });
    o.log.info("ingest publish", { path, protocol: o.protocol, remote: o.remote });
    o.onPublish?.(this.stream);
  }
}
