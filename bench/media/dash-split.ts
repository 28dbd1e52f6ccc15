/**
 * Cost of DASH's per-track files: cutting a muxed CMAF segment (2 s of 3 Mb/s H.264 at 30 fps + 128 kb/s AAC, in
 * 4 fragments like LL-HLS parts) into its video and its audio track file.
 * Baseline, same run: copying the muxed segment once (what serving it would cost if the split were a
 * plain copy). Each file is cut once per segment and cached, so this is paid once per segment, not per viewer.
 */
import { fragment } from "../../src/media/protocols/fmp4/mux.ts";
import { trackSegment } from "../../src/media/protocols/fmp4/split.ts";
import { type BenchResult, round, runIfMain } from "../matrix/lib.ts";

/** A muxed segment: 4 fragments of 0.5 s, 15 video samples (12.5 kB) and ~23 AAC frames (~350 B) each. */
function segment(): Buffer {
  const frags: Buffer[] = [];
  for (let k = 0; k < 4; k++) {
    const v = Array.from({ length: 15 }, (_, i) => ({
      data: Buffer.alloc(12_500, i),
      duration: 3000,
      cts: 0,
      sync: i === 0,
    }));
    const a = Array.from({ length: 23 }, (_, i) => ({
      data: Buffer.alloc(350, i),
      duration: 1024,
      cts: 0,
      sync: true,
    }));
    const { moof, mdat } = fragment(k + 1, [
      { baseTime: k * 45_000, samples: v, withCts: true },
      { baseTime: k * 23 * 1024, samples: a, withCts: false },
    ]);
    frags.push(moof, mdat);
  }
  return Buffer.concat(frags);
}

/** Median µs per call over `n` calls after a warm-up. */
function time(n: number, f: () => unknown): number {
  for (let i = 0; i < 50; i++) f();
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    f();
    xs.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  return xs.sort((a, b) => a - b)[Math.floor(n / 2)] as number;
}

export async function run(): Promise<BenchResult[]> {
  const seg = segment();
  const copy = time(2000, () => Buffer.from(seg));
  const split = time(2000, () => [trackSegment(seg, 1), trackSegment(seg, 2)]);
  return [
    {
      bench: `split one muxed 2 s segment (${round(seg.length / 1024, 0)} KiB) into its video and audio track files`,
      metric: "median time",
      value: round(split, 1),
      unit: `µs (${round(split / copy, 2)}× one copy)`,
      baseline: `Buffer.from(segment), one copy: ${round(copy, 1)} µs`,
      target: "",
      met: null,
    },
  ];
}

await runIfMain(import.meta, run);
