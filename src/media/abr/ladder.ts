/**
 * An ABR ladder as one ffmpeg command: the source path's FLV on stdin, decoded once and split into one filter
 * chain per rung (fps, scale, upload to the encoder's device), each rung encoded and written as FLV to its own
 * pipe (fd 3, 4, ...). Keyframes follow the source's (`-force_key_frames source`, scene cuts off), so every
 * rendition's segments start where the remuxed source's do and players can switch between them cleanly.
 */
import type { z } from "zod";
import type { abrRungSchema } from "../config.ts";
import { QUIET } from "../ffmpeg.ts";
import { deviceArgs, type EncoderChoice } from "./encoders.ts";

export type Rung = z.infer<typeof abrRungSchema>;

/** The rungs ffmpeg runs for a source of `height` (rungs above it are skipped: upscaling adds only bits). */
export function planRungs(ladder: Rung[], height: number | null): { run: Rung[]; skipped: Rung[] } {
  if (!height) return { run: [], skipped: [...ladder] };
  return { run: ladder.filter((r) => r.height <= height), skipped: ladder.filter((r) => r.height > height) };
}

/** "2500k" / "2.5M" / "800000" -> bits per second. */
export function bitsPerSecond(b: string): number {
  const n = Number.parseFloat(b);
  return Math.round(b.endsWith("M") ? n * 1e6 : b.endsWith("k") ? n * 1e3 : n);
}

/** Longest GOP an encoder may make when the source sends no keyframe (frames). */
const MAX_GOP = 600;

/** Encoder options of one rung; hardware encoders get their low-latency modes, libx264 zerolatency. */
function videoCodecArgs(enc: EncoderChoice, r: Rung): string[] {
  const rate = bitsPerSecond(r.videoBitrate);
  const common = ["-b:v", String(rate), "-maxrate", String(rate), "-bufsize", String(rate * 2), "-g", String(MAX_GOP)];
  const keys = ["-force_key_frames", "source"];
  if (enc.kind === "nvenc")
    return ["-c:v", enc.codec, "-preset", "p4", "-tune", "ll", "-forced-idr", "1", ...common, ...keys];
  if (enc.kind === "vaapi") return ["-c:v", enc.codec, "-rc_mode", "CBR", ...common, ...keys];
  if (enc.kind === "qsv") return ["-c:v", enc.codec, "-preset", "veryfast", ...common, ...keys];
  const x264 = ["-preset", r.preset ?? "veryfast", "-tune", "zerolatency", "-sc_threshold", "0"];
  return ["-c:v", enc.codec, ...x264, ...common, ...keys];
}

/** Audio: the source's AAC copied (no cost), or re-encoded when the rung sets audioBitrate. */
const audioArgs = (r: Rung): string[] =>
  r.audioBitrate ? ["-c:a", "aac", "-b:a", String(bitsPerSecond(r.audioBitrate))] : ["-c:a", "copy"];

/** The full ffmpeg argument list; rung i is written to fd 3 + i. */
export function ladderArgs(enc: EncoderChoice, rungs: Rung[]): string[] {
  const d = deviceArgs(enc.kind, enc.device);
  const chains = rungs.map((r, i) => {
    const filters = [...(r.fps ? [`fps=${r.fps}`] : []), `scale=-2:${r.height}`, d.upload];
    return `[s${i}]${filters.join(",")}[v${i}]`;
  });
  const split = rungs.length > 1 ? `[0:v:0]split=${rungs.length}${rungs.map((_, i) => `[s${i}]`).join("")}` : "";
  const graph = split ? [split, ...chains] : [chains[0]?.replace("[s0]", "[0:v:0]") ?? ""];
  const outputs = rungs.flatMap((r, i) => [
    ...["-map", `[v${i}]`, "-map", "0:a:0?"],
    ...videoCodecArgs(enc, r),
    ...audioArgs(r),
    ...["-f", "flv", "-flvflags", "no_duration_filesize", "-flush_packets", "1", `pipe:${3 + i}`],
  ]);
  return [
    ...QUIET,
    ...d.global,
    ...["-probesize", "262144", "-analyzeduration", "1000000", "-f", "flv", "-i", "pipe:0"],
    ...["-filter_complex", graph.join(";")],
    ...outputs,
  ];
}
