/**
 * Hub -> CMAF: a reader's frames are written as FLV into `ffmpeg -f flv -i pipe:0 -c copy -f mp4` (remux, no
 * transcoding), whose fragmented MP4 output is cut into parts and segments by CmafTimeline. ffmpeg 5.1's own
 * hls muxer cannot write LL-HLS parts, so ffmpeg muxes and we segment and write the playlists.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import type { Logger } from "../../../core/logger.ts";
import type { Frame, MediaStream, Reader } from "../../hub.ts";
import { flvHeader, flvTag, tagType } from "../flv/tag.ts";
import { BoxSplitter } from "../fmp4/boxes.ts";
import { CmafTimeline, type TimelineOptions } from "../fmp4/timeline.ts";

export interface PackagerOptions extends TimelineOptions {
  partSeconds: number;
  ffmpegPath: string;
  log: Logger;
}

export function ffmpegArgs(partSeconds: number): string[] {
  return [
    ...["-hide_banner", "-nostdin", "-loglevel", "warning"],
    // Both sequence headers come first, so a short probe suffices; it bounds the startup delay.
    ...["-probesize", "262144", "-analyzeduration", "1000000"],
    ...["-f", "flv", "-i", "pipe:0"],
    ...["-map", "0:v?", "-map", "0:a?", "-c", "copy"],
    ...["-f", "mp4", "-movflags", "+frag_keyframe+empty_moov+default_base_moof+skip_trailer"],
    ...["-frag_duration", String(Math.round(partSeconds * 1e6)), "-flush_packets", "1", "pipe:1"],
  ];
}

export class Packager {
  readonly timeline: CmafTimeline;
  readonly path: string;
  #proc: ChildProcessWithoutNullStreams | undefined;
  readonly #reader: Reader;
  readonly #o: PackagerOptions;
  readonly #log: Logger;
  #stderr = "";
  bytesOut = 0;

  /** Replaced by the next publisher's packager: stop touching the shared timeline. */
  #detached = false;

  /** `timeline`: the path's previous timeline when a publisher reconnects (it continues with a discontinuity). */
  constructor(stream: MediaStream, o: PackagerOptions, timeline?: CmafTimeline) {
    this.path = stream.path;
    this.#o = o;
    this.#log = o.log.child({ path: stream.path, output: "cmaf" });
    this.timeline = timeline ?? new CmafTimeline(o);
    if (timeline) timeline.restart();
    this.#reader = stream.addReader("hls", "packager");
    this.#run(stream).catch((e) => {
      this.#log.error("packager failed", { error: (e as Error).message });
      this.#end();
    });
  }

  #end(): void {
    if (!this.#detached) this.timeline.end();
  }

  get framesDiscarded(): number {
    return this.#reader.framesDiscarded;
  }

  async #run(stream: MediaStream): Promise<void> {
    // Wait for the first decodable media frame: by then the sequence headers tell which tracks exist.
    const held: Frame[] = [];
    for (;;) {
      const f = await this.#reader.next();
      if (!f) return this.#end();
      held.push(f);
      if (f.config || f.kind === "data") continue;
      if ((f.kind === "video" && f.keyframe) || (f.kind === "audio" && !stream.videoConfig)) break;
    }
    const hasVideo = !!stream.videoConfig;
    const hasAudio = !!stream.audioConfig;
    const proc = spawn(this.#o.ffmpegPath, ffmpegArgs(this.#o.partSeconds), { stdio: ["pipe", "pipe", "pipe"] });
    this.#proc = proc;
    const exited = new Promise<number | null>((resolve) => {
      proc.once("error", (e) => {
        this.#log.error("cannot run ffmpeg", { ffmpeg: this.#o.ffmpegPath, error: e.message });
        resolve(-1);
      });
      proc.once("close", (code) => resolve(code));
    });
    proc.stderr.on("data", (d: Buffer) => {
      this.#stderr = (this.#stderr + d.toString()).slice(-2000);
    });
    proc.stdin.on("error", () => {});
    this.#readOutput(proc);
    const write = async (b: Buffer) => {
      if (!proc.stdin.writable) return;
      if (!proc.stdin.write(b))
        await new Promise<void>((r) => {
          // Both listeners go once either fires: a long stream waits for drain thousands of times.
          const done = () => {
            proc.stdin.off("drain", done);
            proc.off("close", done);
            r();
          };
          proc.stdin.once("drain", done);
          proc.once("close", done);
        });
    };
    await write(flvHeader(hasAudio, hasVideo));
    let base: number | undefined;
    const send = (f: Frame) => {
      if (base === undefined && !f.config) base = f.dts;
      return write(flvTag(tagType(f), f.config ? 0 : f.dts - (base ?? f.dts), f.data));
    };
    for (const f of held) if (f.kind !== "data") await send(f);
    for (;;) {
      const f = await this.#reader.next();
      if (!f || proc.exitCode !== null) break;
      if (f.kind === "data") continue;
      await send(f);
    }
    proc.stdin.end();
    const code = await exited;
    if (code !== 0 && code !== null) this.#log.warn("ffmpeg exited", { code, stderr: this.#stderr.trim() });
    this.#end();
  }

  #readOutput(proc: ChildProcessWithoutNullStreams): void {
    const split = new BoxSplitter();
    let ftyp: Buffer | undefined;
    let moof: Buffer | undefined;
    proc.stdout.on("data", (d: Buffer) => {
      if (this.#detached) return;
      try {
        for (const box of split.push(d)) {
          if (box.type === "ftyp") ftyp = Buffer.from(box.data);
          else if (box.type === "moov") this.timeline.setInit(ftyp ?? Buffer.alloc(0), Buffer.from(box.data));
          else if (box.type === "moof") moof = Buffer.from(box.data);
          else if (box.type === "mdat" && moof) {
            this.timeline.addFragment(moof, Buffer.from(box.data));
            moof = undefined;
          }
        }
      } catch (e) {
        this.#log.error("unreadable packager output", { error: (e as Error).message });
        proc.kill("SIGKILL");
      }
    });
  }

  /** Stop; with `detach`, leave the timeline to the next publisher's packager. */
  close(detach = false): void {
    this.#detached ||= detach;
    this.#reader.close();
    this.#proc?.stdin.end();
    const p = this.#proc;
    if (p && p.exitCode === null) setTimeout(() => p.exitCode === null && p.kill("SIGKILL"), 2000).unref();
  }
}
