/**
 * Rate limits shared by every worker of a scaled-out homeserver: one token bucket per key in Redis, taken by a Lua
 * script (atomic, on Redis's clock, so workers with skewed clocks agree), so a client spreading its requests over
 * N workers gets the rate it would get from one. When Redis does not answer (down, or slower than TIMEOUT_MS) the
 * worker falls back to its own bucket: limits stay on, only N× looser, and a request never waits on a dead Redis.
 */
import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import type { Logger } from "../../core/logger.ts";
import { type Limiter, RateLimiter } from "../http/ratelimit.ts";

/** A Redis answer slower than this falls back to the local bucket (it is on every rate-limited request). */
const TIMEOUT_MS = 1000;

// KEYS[1] the bucket; ARGV rate (tokens/s), burst. Returns 0 (a token taken) or the ms until the next token.
// The bucket lives as long as it takes to refill (past that it is full, which is what a missing key means).
const SCRIPT = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'k', 'at')
local tokens = tonumber(b[1])
local at = tonumber(b[2])
if tokens == nil or at == nil then tokens = burst; at = now end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) / rate * 1000) end
redis.call('HSET', KEYS[1], 'k', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return wait
`;
const SHA = createHash("sha1").update(SCRIPT).digest("hex");

/**
 * Runs a Lua script (by its SHA; sent whole on NOSCRIPT: first use on this Redis, or after its restart) and returns
 * its non-negative number, or rejects when Redis fails, answers something else or is slower than TIMEOUT_MS.
 */
async function runScript(redis: Redis, script: string, sha: string, key: string, args: number[]): Promise<number> {
  let timer: NodeJS.Timeout | undefined;
  // When the timer fires after the event loop was blocked, Redis's answer may be waiting in the socket: timers run
  // before I/O, so look once more after the I/O phase (setImmediate) before calling Redis slow.
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => setImmediate(() => reject(new Error(`redis slower than ${TIMEOUT_MS} ms`))), TIMEOUT_MS);
  });
  const run = async (): Promise<unknown> => {
    try {
      return await redis.evalsha(sha, 1, key, ...args);
    } catch (e) {
      if (!String(e).includes("NOSCRIPT")) throw e;
      return redis.eval(script, 1, key, ...args);
    }
  };
  try {
    const n = Number(await Promise.race([run(), late]));
    if (!Number.isFinite(n) || n < 0) throw new Error(`unexpected answer ${n}`);
    return n;
  } finally {
    clearTimeout(timer);
  }
}

export class SharedRateLimiter implements Limiter {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #rate: number;
  readonly #burst: number;
  readonly #local: RateLimiter;
  readonly #log: Logger;
  #warned = 0;
  /** Answers that came from the local fallback (tests, metrics). */
  fallbacks = 0;

  constructor(redis: Redis, prefix: string, perSecond: number, burst: number, log: Logger) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#rate = perSecond;
    this.#burst = burst;
    this.#local = new RateLimiter(perSecond, burst);
    this.#log = log;
  }

  take(key: string): number | Promise<number> {
    if (this.#redis.status !== "ready") return this.#fallback(key, "redis not connected");
    return this.#shared(key).catch((e) => this.#fallback(key, String(e)));
  }

  #shared(key: string): Promise<number> {
    return runScript(this.#redis, SCRIPT, SHA, `${this.#prefix}:${key}`, [this.#rate, this.#burst]);
  }

  #fallback(key: string, why: string): number {
    this.fallbacks++;
    const now = Date.now();
    if (now - this.#warned > 60_000) {
      this.#warned = now;
      this.#log.warn("rate limits: shared buckets unavailable, limiting per worker", { error: why.slice(0, 200) });
    }
    return this.#local.take(key, now);
  }
}

// KEYS[1] the window; ARGV n, limit, window ms. Returns 0 (n counted) or the ms until the window ends (refused,
// nothing counted). A window starts at its first count and lasts window ms (Redis's clock).
const WINDOW_SCRIPT = `
local n = tonumber(ARGV[1])
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used + n > tonumber(ARGV[2]) then
  local left = redis.call('PTTL', KEYS[1])
  if left < 1 then left = tonumber(ARGV[3]) end
  return left
end
redis.call('INCRBY', KEYS[1], n)
if used == 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 0
`;
const WINDOW_SHA = createHash("sha1").update(WINDOW_SCRIPT).digest("hex");

/**
 * Fixed-window counts shared by every worker (federation.toDevicePerSenderPerMinute: to-device EDUs per local user
 * per minute, however the user's requests are spread). `count` answers null when Redis does not (down, or slower
 * than TIMEOUT_MS): the caller counts in its own process then (limits stay on, N× looser).
 */
export class SharedWindows {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #log: Logger;
  #warned = 0;
  /** Answers left to the caller's own count because Redis did not answer (tests, metrics). */
  fallbacks = 0;

  constructor(redis: Redis, prefix: string, log: Logger) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#log = log;
  }

  /** Count `n` against `key`'s `limit` per `windowMs`: 0 when counted, else the ms until the window ends. */
  async count(key: string, n: number, limit: number, windowMs: number): Promise<number | null> {
    if (this.#redis.status !== "ready") return this.#fallback("redis not connected");
    try {
      return await runScript(this.#redis, WINDOW_SCRIPT, WINDOW_SHA, `${this.#prefix}:${key}`, [n, limit, windowMs]);
    } catch (e) {
      return this.#fallback(String(e));
    }
  }

  #fallback(why: string): null {
    this.fallbacks++;
    const now = Date.now();
    if (now - this.#warned > 60_000) {
      this.#warned = now;
      this.#log.warn("shared counts unavailable, counting per worker", { error: why.slice(0, 200) });
    }
    return null;
  }
}
