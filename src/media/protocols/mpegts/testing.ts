/** Shared by the MPEG-TS tests and bench: real ffmpeg-made transport streams, and demuxing a whole buffer. */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Frame } from "../../frame.ts";
import { TsDemuxer } from "./demux.ts";

export const run = promisify(execFile);

export type Clip = "h264-aac" | "h265-opus" | "h264" | "aac";

/** `seconds` of testsrc2 320x240@25 (a keyframe a second, 3 B-frames) and a sine, as MPEG-TS made by ffmpeg. */
export async function ffmpegTs(clip: Clip, seconds = 4): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), "ami-ts-"));
  const out = join(dir, "clip.ts");
  const video = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"];
  const audio = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"];
  const x264 = ["-c:v", "libx264", "-preset", "ultrafast", "-bf", "3", "-g", "25"];
  const x265 = ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error:bframes=3", "-g", "25"];
  const args: Record<Clip, string[]> = {
    "h264-aac": [...video, ...audio, "-t", String(seconds), ...x264, "-c:a", "aac"],
    "h265-opus": [...video, ...audio, "-t", String(seconds), ...x265, "-c:a", "libopus"],
    h264: [...video, "-t", String(seconds), ...x264],
    aac: [...audio, "-t", String(seconds), "-c:a", "aac"],
  };
  try {
    await run("ffmpeg", ["-hide_banner", "-nostdin", "-loglevel", "error", "-y", ...args[clip], "-f", "mpegts", out]);
    return await readFile(out);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Demux a whole buffer in SRT-sized (1316-byte) chunks; errors collected. */
export function demuxAll(ts: Buffer, chunk = 1316): { frames: Frame[]; errors: Error[] } {
  const frames: Frame[] = [];
  const errors: Error[] = [];
  const d = new TsDemuxer((f) => frames.push(f), { onError: (e) => errors.push(e) });
  for (let i = 0; i < ts.length; i += chunk) d.push(ts.subarray(i, i + chunk));
  d.end();
  return { frames, errors };
}

/** Per-packet facts ffprobe reports for one stream of a file: keyframe flag, dts and pts in seconds. */
export async function probePackets(
  file: string,
  stream: "v" | "a",
): Promise<{ key: boolean; dts: number; pts: number }[]> {
  const { stdout } = await run("ffprobe", [
    ...["-v", "error", "-select_streams", stream, "-show_entries", "packet=pts,dts,flags", "-of", "json", file],
  ]);
  const packets = (JSON.parse(stdout).packets ?? []) as { pts?: number; dts?: number; flags: string }[];
  return packets.map((p) => ({ key: p.flags.startsWith("K"), dts: p.dts ?? p.pts ?? 0, pts: p.pts ?? p.dts ?? 0 }));
}
