/** Token buckets keyed by user or IP; answers how long to wait when empty. */

/**
 * What the HTTP edge asks: 0 when allowed (a token is taken), else milliseconds until the next token. One process:
 * RateLimiter (synchronous); several workers: cluster/ratelimit.ts SharedRateLimiter (a Redis round trip).
 */
export interface Limiter {
  take(key: string): number | Promise<number>;
}

/** Buckets kept at most (~150 bytes each). Past it, full buckets go first, then the oldest. */
const MAX_BUCKETS = 20_000;

export class RateLimiter implements Limiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #rate: number;
  readonly #burst: number;
  readonly #max: number;

  constructor(perSecond: number, burst: number, maxBuckets = MAX_BUCKETS) {
    this.#rate = perSecond;
    this.#burst = burst;
    this.#max = maxBuckets;
  }

  /** Buckets currently held (for tests). */
  get size(): number {
    return this.#buckets.size;
  }

  /** 0 when allowed (a token is taken), else milliseconds until the next token. */
  take(key: string, now = Date.now()): number {
    let b = this.#buckets.get(key);
    if (!b) {
      if (this.#buckets.size >= this.#max) this.#shrink(now);
      b = { tokens: this.#burst, at: now };
      this.#buckets.set(key, b);
    }
    b.tokens = Math.min(this.#burst, b.tokens + ((now - b.at) / 1000) * this.#rate);
    b.at = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - b.tokens) / this.#rate) * 1000);
  }

  // Full buckets carry no information: drop them. If that is not enough (more distinct keys than the cap within
  // one refill period), drop the oldest-created too, down to 90% so the sweep is not repeated on every new key:
  // a dropped key just starts again with a full burst.
  #shrink(now: number): void {
    for (const [k, b] of this.#buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.#rate >= this.#burst) this.#buckets.delete(k);
    }
    const target = Math.floor(this.#max * 0.9);
    for (const k of this.#buckets.keys()) {
      if (this.#buckets.size <= target) break;
      this.#buckets.delete(k);
    }
  }
}
