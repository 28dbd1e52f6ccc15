/**
 * CPU per remuxed stream: a 1080p30 6 Mb/s H.264 + AAC clip is published in a loop (`-re -c copy`) over RTMP to
 * the media service, which remuxes it to CMAF for HLS / LL-HLS / DASH; the service process and its ffmpeg children
 * are measured from /proc over 20 s. Baseline, same run: ffmpeg alone doing the remux
 * (`ffmpeg -re -i clip -c copy -f hls`, fMP4 1 s segments). Target ≤ 1.3× the baseline.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BenchResult, round, runIfMain } from "../matrix/lib.ts";
import { clip1080p, ffmpeg, MediaChild, publishLoop, treeCores, treeTicks, waitFor } from "./lib.ts";

const WINDOW_S = 20;
const WARMUP_MS = 4000;

/** Cores used by the process tree, and by the top process alone. */
async function measure(pid: number): Promise<{ all: number; top: number }> {
  await new Promise((r) => setTimeout(r, WARMUP_MS));
  const a = treeTicks(pid);
  await new Promise((r) => setTimeout(r, WINDOW_S * 1000));
  const b = treeTicks(pid);
  const top = new Map([[pid, b.get(pid) ?? 0]]);
  return { all: treeCores(a, b, WINDOW_S), top: treeCores(a, top, WINDOW_S) };
}

async function ours(clip: string): Promise<{ all: number; top: number }> {
  const m = await MediaChild.start();
  const pub = publishLoop(clip, `${m.rtmp}/live/cpu`);
  try {
    await waitFor("first segment", async () => (await fetch(`${m.http}/live/cpu/stream.m3u8`)).status === 200);
    return await measure(m.pid);
  } finally {
    await pub.stop();
    await m.stop();
  }
}

async function baseline(clip: string): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "ami-bench-hls-"));
  const f = ffmpeg([
    ...["-re", "-stream_loop", "-1", "-i", clip, "-c", "copy", "-f", "hls", "-hls_time", "1"],
    ...["-hls_segment_type", "fmp4", "-hls_list_size", "7", "-hls_flags", "delete_segments+independent_segments"],
    join(dir, "stream.m3u8"),
  ]);
  try {
    return (await measure(f.proc.pid!)).all;
  } finally {
    await f.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<BenchResult[]> {
  const clip = await clip1080p();
  const base = await baseline(clip);
  const o = await ours(clip);
  const mine = o.all;
  const ratio = mine / base;
  return [
    {
      bench: "CPU per remuxed 1080p30 6 Mb/s stream (RTMP in, CMAF HLS/LL-HLS/DASH out)",
      metric: "cores",
      value: round(mine, 3),
      unit: `(${round(ratio, 2)}× ffmpeg alone; Node process ${round(o.top, 3)}, ffmpeg remux child ${round(o.all - o.top, 3)})`,
      baseline: `ffmpeg -re -i clip -c copy -f hls (fMP4, 1 s): ${round(base, 3)} cores`,
      target: "≤ 1.3× ffmpeg",
      met: ratio <= 1.3,
    },
  ];
}

await runIfMain(import.meta, run);
