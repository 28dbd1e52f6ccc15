/**
 * Hit ratio of the edge's memory-tier policy (W-TinyLFU, src/cdn/wtinylfu.ts) against LRU on Zipf traces
 * (s = 0.7 / 0.9 / 1.1, 100,000 objects, 1,000,000 requests, one seeded trace per s) with caches of 0.1 / 1 / 10 %
 * of the objects. Unit-size objects, as in the W-TinyLFU paper. Target: W-TinyLFU ≥ LRU everywhere; the ideal
 * (the most popular objects always held) is printed as the ceiling.
 */

import { type CachePolicy, LruPolicy, WTinyLfuPolicy } from "../../src/cdn/wtinylfu.ts";
import { type BenchResult, round, runIfMain } from "../matrix/lib.ts";

const OBJECTS = 100_000;
const REQUESTS = 1_000_000;

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function zipfTrace(s: number, n: number, count: number, seed = 42): Uint32Array {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    sum += 1 / (i + 1) ** s;
    cdf[i] = sum;
  }
  const rnd = mulberry32(seed);
  // Ranks shuffled onto ids so popularity is not ordered by key.
  const ids = new Uint32Array(n);
  for (let i = 0; i < n; i++) ids[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [ids[i], ids[j]] = [ids[j], ids[i]];
  }
  const out = new Uint32Array(count);
  for (let r = 0; r < count; r++) {
    const u = rnd() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid] < u) lo = mid + 1;
      else hi = mid;
    }
    out[r] = ids[lo];
  }
  return out;
}

export function hitRatio(policy: CachePolicy, trace: Uint32Array): number {
  let hits = 0;
  for (let i = 0; i < trace.length; i++) {
    const k = `/o/${trace[i]}`;
    if (policy.access(k)) hits++;
    else policy.insert(k, 1);
  }
  return hits / trace.length;
}

export async function run(): Promise<BenchResult[]> {
  const rows: BenchResult[] = [];
  for (const s of [0.7, 0.9, 1.1]) {
    const trace = zipfTrace(s, OBJECTS, REQUESTS);
    // The ceiling for any policy on an i.i.d. trace: always holding the `size` most popular objects.
    const weights = Array.from({ length: OBJECTS }, (_, i) => 1 / (i + 1) ** s);
    const total = weights.reduce((a, b) => a + b, 0);
    const ideal = (size: number) => weights.slice(0, size).reduce((a, b) => a + b, 0) / total;
    for (const pct of [0.1, 1, 10]) {
      const size = Math.round((OBJECTS * pct) / 100);
      const lru = hitRatio(new LruPolicy(size), trace);
      const w = hitRatio(new WTinyLfuPolicy(size, size), trace);
      rows.push({
        bench: `CDN memory-tier hit ratio, Zipf ${s}, ${OBJECTS} objects, ${REQUESTS} requests`,
        metric: `cache ${pct} % (${size} objects), W-TinyLFU`,
        value: round(w * 100, 1),
        unit: "% hits",
        baseline: `LRU ${round(lru * 100, 1)} %; ideal (top ${size} always held) ${round(ideal(size) * 100, 1)} %`,
        target: "≥ LRU",
        met: w >= lru,
      });
    }
  }
  return rows;
}

await runIfMain(import.meta, run);
