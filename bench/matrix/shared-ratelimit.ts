/**
 * What a rate-limited request pays for the buckets the workers share (issue 13, cluster/ratelimit.ts): one take()
 * on the real Redis (a Lua script), one at a time (latency) and 64 in flight (takes/s), against a bare Redis PING
 * on the same connection (the floor of any Redis round trip) and the one-process bucket in memory, same run.
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { silentLogger } from "../../src/core/logger.ts";
import { SharedRateLimiter } from "../../src/matrix/cluster/ratelimit.ts";
import { RateLimiter } from "../../src/matrix/http/ratelimit.ts";
import { type BenchResult, percentile, round, runIfMain } from "./lib.ts";

const N = 5_000;
const IN_FLIGHT = 64;

async function timed(n: number, fn: (i: number) => Promise<unknown> | unknown): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn(i);
    out.push((performance.now() - t0) * 1000);
  }
  return out;
}

async function perSecond(n: number, fn: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < n) await fn(next++);
    }),
  );
  return n / ((performance.now() - t0) / 1000);
}

export async function run(): Promise<BenchResult[]> {
  const redis = new Redis("redis://127.0.0.1:6379", { maxRetriesPerRequest: 1, enableOfflineQueue: false });
  await new Promise<void>((resolve, reject) => {
    redis.once("ready", () => resolve());
    redis.once("error", reject);
  });
  const prefix = `ami-bench:rl:${randomBytes(4).toString("hex")}`;
  try {
    // Many keys with room to spare: every take is allowed (the common case), and each touches a real bucket.
    const shared = new SharedRateLimiter(redis, prefix, 1_000, 1_000_000, silentLogger);
    const local = new RateLimiter(1_000, 1_000_000);
    const key = (i: number) => `@user${i % 500}:bench`;
    // Warm-up: the script is loaded, connections and JIT are warm.
    await timed(500, (i) => shared.take(key(i)));
    await timed(500, () => redis.ping());
    const ping = await timed(N, () => redis.ping());
    const take = await timed(N, (i) => shared.take(key(i)));
    const mem = await timed(N, (i) => local.take(key(i)));
    const pingRate = await perSecond(N * 4, () => redis.ping());
    const takeRate = await perSecond(N * 4, async (i) => shared.take(key(i)));
    if (shared.fallbacks > 0) throw new Error(`${shared.fallbacks} takes fell back to the local bucket`);
    const baseline = `Redis PING p50 ${round(percentile(ping, 50), 0)} µs (p99 ${round(percentile(ping, 99), 0)}), ${Math.round(pingRate)}/s with ${IN_FLIGHT} in flight; in-memory bucket p50 ${round(percentile(mem, 50), 2)} µs`;
    const row = (metric: string, value: number, unit: string): BenchResult => ({
      bench: "shared-ratelimit",
      metric,
      value,
      unit,
      baseline,
      target: "",
      met: null,
    });
    return [
      row("shared take p50", round(percentile(take, 50), 0), "µs"),
      row("shared take p99", round(percentile(take, 99), 0), "µs"),
      row(`shared takes/s (${IN_FLIGHT} in flight)`, Math.round(takeRate), "/s"),
    ];
  } finally {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  }
}

await runIfMain(import.meta, run);
