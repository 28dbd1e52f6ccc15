/**
 * The 1 GiB streamed put + get of test/e2e/cas-stream.test.ts, in its own process so its RSS is its own. It prints
 * one JSON line: sizes, hashes, throughput and RSS (base after a warm-up, peak sampled every 20 ms).
 */
import { createHash } from "node:crypto";
import { FsCasStore } from "../cas/fs-backend.ts";
import { prngStream } from "../core/prng.ts";

const [root, sizeArg] = process.argv.slice(2);
const size = Number(sizeArg);
const store = new FsCasStore({ root, params: { min: 16 * 1024, avg: 64 * 1024, max: 256 * 1024 } });
// Warm up (code paths, buffers) so the baseline is the steady state, not the first allocation.
const warm = await store.put(prngStream("warm", 32 * 1024 * 1024));
for await (const _ of store.get(warm.id));
const base = process.memoryUsage().rss;
let peak = base;
const sampler = setInterval(() => {
  peak = Math.max(peak, process.memoryUsage().rss);
}, 20);
const expected = createHash("sha256");
const input = (function* () {
  for (const b of prngStream("gib", size)) {
    expected.update(b);
    yield b;
  }
})();
const t0 = performance.now();
const r = await store.put(input);
const t1 = performance.now();
const got = createHash("sha256");
let n = 0;
for await (const b of store.get(r.id)) {
  got.update(b);
  n += b.length;
}
const t2 = performance.now();
clearInterval(sampler);
peak = Math.max(peak, process.memoryUsage().rss);
process.stdout.write(
  `${JSON.stringify({ size: r.size, chunks: r.chunks, sha256: r.sha256, expected: expected.digest("hex"), got: got.digest("hex"), read: n, putS: (t1 - t0) / 1000, getS: (t2 - t1) / 1000, base, peak })}\n`,
);
