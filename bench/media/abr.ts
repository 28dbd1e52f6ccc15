/**
 * CPU of a 2-rung software ABR ladder (360p 800 kb/s + 240p 400 kb/s, libx264 veryfast/zerolatency) on a 480p30
 * source published in a loop over RTMP: the media service process tree (Node, the ladder's ffmpeg, the three
 * remux children) measured from /proc over 20 s. Baseline, same run: ffmpeg alone doing the same work from the
 * same clip (source copied + both rungs encoded with the same settings, each to fMP4 HLS with 1 s segments).
 * Target ≤ 1.3× the baseline: the encode dominates; what we add is relaying and packaging.
 */
import { existsSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BenchResult, round, runIfMain } from "../matrix/lib.ts";
import { measure } from "./cpu.ts";
import { ffmpeg, MediaChild, publishLoop, waitFor } from "./lib.ts";

const LADDER = [
  { name: "360p", height: 360, videoBitrate: "800k" },
  { name: "240p", height: 240, videoBitrate: "400k" },
];

/** 854x480 30 fps 1.5 Mb/s H.264 + AAC, 10 s, 1 s GOP; encoded once, cached in the temp directory. */
async function clip480(): Promise<string> {
  const file = join(tmpdir(), "ami-bench-480p30.mp4");
  if (existsSync(file)) return file;
  const tmp = `${file}.part.mp4`;
  const f = ffmpeg([
    ...["-f", "lavfi", "-i", "testsrc2=size=854x480:rate=30", "-f", "lavfi", "-i", "sine=frequency=440"],
    ...["-t", "10", "-c:v", "libx264", "-preset", "veryfast", "-b:v", "1500k", "-g", "30", "-sc_threshold", "0"],
    ...["-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", "-y", tmp],
  ]);
  if ((await f.exit) !== 0) throw new Error("could not encode the bench clip");
  renameSync(tmp, file);
  return file;
}

async function ours(clip: string): Promise<{ all: number; top: number }> {
  const m = await MediaChild.start({ paths: { "live/*": { publish: "any", abr: LADDER } } });
  const pub = publishLoop(clip, `${m.rtmp}/live/abr`);
  try {
    for (const r of ["", ...LADDER.map((x) => `/${x.name}`)])
      await waitFor(`live/abr${r}`, async () => (await fetch(`${m.http}/live/abr${r}/stream.m3u8`)).status === 200);
    return await measure(m.pid);
  } finally {
    await pub.stop();
    await m.stop();
  }
}

/** One ffmpeg: the source copied to HLS, each rung decoded once, scaled and encoded to its own HLS. */
async function baseline(clip: string): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "ami-bench-abr-"));
  const hls = (name: string) => [
    ...["-f", "hls", "-hls_time", "1", "-hls_segment_type", "fmp4", "-hls_list_size", "7"],
    ...["-hls_flags", "delete_segments+independent_segments", "-hls_fmp4_init_filename", `${name}-init.mp4`],
    ...["-hls_segment_filename", join(dir, `${name}-%d.m4s`), join(dir, `${name}.m3u8`)],
  ];
  const split = `[0:v:0]split=2[a][b];[a]scale=-2:360,format=yuv420p[v0];[b]scale=-2:240,format=yuv420p[v1]`;
  const rung = (i: number, rate: string) => [
    ...["-map", `[v${i}]`, "-map", "0:a:0", "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency"],
    ...["-b:v", rate, "-maxrate", rate, "-g", "600", "-force_key_frames", "source", "-sc_threshold", "0"],
    ...["-c:a", "copy", ...hls(`r${i}`)],
  ];
  const f = ffmpeg([
    ...["-re", "-stream_loop", "-1", "-i", clip, "-filter_complex", split],
    ...["-map", "0:v:0", "-map", "0:a:0", "-c", "copy", ...hls("src")],
    ...rung(0, "800k"),
    ...rung(1, "400k"),
  ]);
  try {
    return (await measure(f.proc.pid!)).all;
  } finally {
    await f.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<BenchResult[]> {
  const clip = await clip480();
  const base = await baseline(clip);
  const o = await ours(clip);
  const ratio = o.all / base;
  return [
    {
      bench: "CPU of a 2-rung software ABR ladder (360p + 240p) on a 480p30 RTMP source, with HLS/LL-HLS/DASH out",
      metric: "cores",
      value: round(o.all, 3),
      unit: `(${round(ratio, 2)}× ffmpeg alone; Node process ${round(o.top, 3)}, ffmpeg children ${round(o.all - o.top, 3)})`,
      baseline: `one ffmpeg: source copy + the same 2 rungs (libx264 veryfast/zerolatency) to fMP4 HLS: ${round(base, 3)} cores`,
      target: "≤ 1.3× ffmpeg",
      met: ratio <= 1.3,
    },
  ];
}

await runIfMain(import.meta, run);
