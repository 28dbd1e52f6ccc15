/**
 * MPEG-TS in TypeScript: TsMuxer throughput (hub frames -> TS packets, what the TS HLS variant and an SRT/TS
 * output cost) and TsDemuxer + TsMuxer remux, on 30 s of 1280x720 H.264 (3 B-frames, ~4 Mb/s) + AAC that ffmpeg
 * encoded to MPEG-TS. Baseline, same run, same input file: `ffmpeg -i in.ts -c copy -f mpegts` (a remux by
 * ffmpeg, process start included), median of 3.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Frame } from "../../src/media/frame.ts";
import { TsDemuxer } from "../../src/media/protocols/mpegts/demux.ts";
import { TsMuxer } from "../../src/media/protocols/mpegts/mux.ts";
import { run as exec } from "../../src/media/protocols/mpegts/testing.ts";
import { type BenchResult, round, runIfMain } from "../matrix/lib.ts";

const SECONDS = 30;

const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

function demux(ts: Buffer): Frame[] {
  const frames: Frame[] = [];
  const d = new TsDemuxer((f) => frames.push(f));
  for (let i = 0; i < ts.length; i += 1316) d.push(ts.subarray(i, i + 1316));
  d.end();
  return frames;
}

function mux(frames: Frame[]): number {
  const m = new TsMuxer();
  let bytes = 0;
  for (const f of frames) bytes += m.frame(f).length;
  return bytes;
}

/** Median seconds of `f` over `n` runs after one warm-up. */
function time(n: number, f: () => unknown): number {
  f();
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    f();
    xs.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return median(xs);
}

export async function run(): Promise<BenchResult[]> {
  const dir = await mkdtemp(join(tmpdir(), "ami-bench-ts-"));
  try {
    const input = join(dir, "in.ts");
    await exec("ffmpeg", [
      ...["-hide_banner", "-nostdin", "-loglevel", "error", "-y"],
      ...["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30", "-f", "lavfi", "-i", "sine=sample_rate=48000"],
      ...["-t", String(SECONDS), "-c:v", "libx264", "-preset", "ultrafast", "-bf", "3", "-b:v", "4M", "-g", "60"],
      ...["-c:a", "aac", "-f", "mpegts", input],
    ]);
    const ts = await readFile(input);
    const frames = demux(ts);
    const media = frames.filter((f) => !f.config).length;
    let outBytes = 0;
    const muxS = time(5, () => {
      outBytes = mux(frames);
    });
    const remuxS = time(5, () => mux(demux(ts)));
    const ff: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = process.hrtime.bigint();
      await exec("ffmpeg", ["-v", "error", "-i", input, "-c", "copy", "-f", "mpegts", "-y", join(dir, "out.ts")]);
      ff.push(Number(process.hrtime.bigint() - t0) / 1e9);
    }
    const ffS = median(ff);
    const mbps = (bytes: number, s: number) => round(bytes / 1e6 / s, 0);
    const fps = (s: number) => round(media / s, 0);
    const base = `ffmpeg -c copy -f mpegts remux of the same file: ${fps(ffS)} frames/s, ${mbps(ts.length, ffS)} MB/s (${round(ffS * 1000, 0)} ms)`;
    const what = `${SECONDS} s 720p30 H.264 (3 B-frames) + AAC, ${round(ts.length / 1e6, 1)} MB, ${media} frames`;
    return [
      {
        bench: `TsMuxer: hub frames -> MPEG-TS (${what})`,
        metric: "throughput",
        value: fps(muxS),
        unit: `frames/s, ${mbps(outBytes, muxS)} MB/s, ${round((SECONDS / muxS) | 0, 0)}× real time`,
        baseline: base,
        target: "",
        met: null,
      },
      {
        bench: `TsDemuxer + TsMuxer remux (${what})`,
        metric: "throughput",
        value: fps(remuxS),
        unit: `frames/s, ${mbps(ts.length, remuxS)} MB/s in`,
        baseline: base,
        target: "",
        met: null,
      },
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await runIfMain(import.meta, run);
