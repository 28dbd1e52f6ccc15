/**
 * Admission and eviction for the edge's memory tier: W-TinyLFU (Einziger, Friedman, Manes 2017), weighted by bytes.
 * A small window LRU (1 % of the bytes) takes every new object; what falls out of it is a candidate for the main
 * area, a segmented LRU (probation 20 %, protected 80 %). A candidate enters main only if its estimated frequency
 * beats the probation victim's; the estimate comes from a count-min sketch (4 rows of 4-bit counters, halved every
 * `sampleSize` accesses so old popularity fades) behind a doorkeeper Bloom filter (one-hit wonders never reach the
 * sketch). Plain LRU is here too: the baseline of the hit-ratio benchmark.
 */

/** A cache policy: `access` on every lookup, `insert` after a miss; both return the keys to drop. */
export interface CachePolicy {
  /** Records an access; true if the key is held (a hit). */
  access(key: string): boolean;
  /** Offers a key of `size` bytes just fetched; returns the keys evicted (maybe the key itself: not admitted). */
  insert(key: string, size: number): string[];
  remove(key: string): void;
  has(key: string): boolean;
  readonly bytes: number;
}

function fnv1a(s: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}

/** Count-min sketch of 4-bit counters (4 rows) with periodic halving, fronted by a doorkeeper Bloom filter. */
export class FrequencySketch {
  private readonly rows: Uint8Array[];
  private readonly mask: number;
  private readonly door: Uint8Array;
  private readonly doorBits: number;
  private additions = 0;
  readonly sampleSize: number;

  constructor(expectedItems: number) {
    // 16 counters per expected item a row (Caffeine packs 16 in each of its nextPow2(items) longs): few collisions.
    const width = 2 ** Math.max(8, Math.ceil(Math.log2(Math.max(16, expectedItems) * 16)));
    this.mask = width - 1;
    this.rows = [0, 1, 2, 3].map(() => new Uint8Array(width));
    this.doorBits = width * 8;
    this.door = new Uint8Array(this.doorBits / 8);
    this.sampleSize = 10 * Math.max(16, expectedItems);
  }

  private doorHas(h1: number, h2: number): boolean {
    for (let i = 0; i < 3; i++) {
      const b = (h1 + i * h2) % this.doorBits;
      if ((this.door[b >>> 3] & (1 << (b & 7))) === 0) return false;
    }
    return true;
  }

  private doorSet(h1: number, h2: number): void {
    for (let i = 0; i < 3; i++) {
      const b = (h1 + i * h2) % this.doorBits;
      this.door[b >>> 3] |= 1 << (b & 7);
    }
  }

  increment(key: string): void {
    const h1 = fnv1a(key, 0);
    const h2 = fnv1a(key, 0x9e3779b9) | 1;
    if (!this.doorHas(h1, h2)) this.doorSet(h1, h2);
    else
      for (let i = 0; i < 4; i++) {
        const row = this.rows[i];
        const j = (h1 + i * h2) & this.mask;
        if (row[j] < 15) row[j]++;
      }
    if (++this.additions >= this.sampleSize) this.reset();
  }

  frequency(key: string): number {
    const h1 = fnv1a(key, 0);
    const h2 = fnv1a(key, 0x9e3779b9) | 1;
    let min = 15;
    for (let i = 0; i < 4; i++) min = Math.min(min, this.rows[i][(h1 + i * h2) & this.mask]);
    return min + (this.doorHas(h1, h2) ? 1 : 0);
  }

  /** Ageing: every counter halved, the doorkeeper cleared. */
  reset(): void {
    for (const row of this.rows) for (let j = 0; j < row.length; j++) row[j] >>= 1;
    this.door.fill(0);
    this.additions = Math.floor(this.additions / 2);
  }
}

/** Least recently used, by bytes (a Map keeps insertion order: delete + set moves a key to the MRU end). */
export class LruPolicy implements CachePolicy {
  private readonly m = new Map<string, number>();
  bytes = 0;
  readonly maxBytes: number;
  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }
  access(key: string): boolean {
    const s = this.m.get(key);
    if (s === undefined) return false;
    this.m.delete(key);
    this.m.set(key, s);
    return true;
  }
  insert(key: string, size: number): string[] {
    this.remove(key);
    if (size > this.maxBytes) return [key];
    this.m.set(key, size);
    this.bytes += size;
    const out: string[] = [];
    for (const [k, s] of this.m) {
      if (this.bytes <= this.maxBytes) break;
      this.m.delete(k);
      this.bytes -= s;
      out.push(k);
    }
    return out;
  }
  remove(key: string): void {
    const s = this.m.get(key);
    if (s === undefined) return;
    this.m.delete(key);
    this.bytes -= s;
  }
  has(key: string): boolean {
    return this.m.has(key);
  }
}

/** One LRU segment with its byte count. */
class Segment {
  readonly m = new Map<string, number>();
  bytes = 0;
  add(k: string, s: number): void {
    this.m.set(k, s);
    this.bytes += s;
  }
  drop(k: string): number | undefined {
    const s = this.m.get(k);
    if (s === undefined) return undefined;
    this.m.delete(k);
    this.bytes -= s;
    return s;
  }
  /** The least recently used key. */
  oldest(): string | undefined {
    for (const k of this.m.keys()) return k;
    return undefined;
  }
}

export class WTinyLfuPolicy implements CachePolicy {
  private readonly window = new Segment();
  private readonly probation = new Segment();
  private readonly protected = new Segment();
  readonly sketch: FrequencySketch;
  private readonly windowMax: number;
  private readonly mainMax: number;
  private readonly protectedMax: number;

  /** `expectedItems`: about how many objects fit (sizes the sketch); `windowShare`: the window's part of the bytes. */
  readonly maxBytes: number;
  constructor(maxBytes: number, expectedItems: number, windowShare = 0.01) {
    this.maxBytes = maxBytes;
    this.windowMax = Math.max(1, Math.floor(maxBytes * windowShare));
    this.mainMax = maxBytes - this.windowMax;
    this.protectedMax = Math.floor(this.mainMax * 0.8);
    this.sketch = new FrequencySketch(expectedItems);
  }

  get bytes(): number {
    return this.window.bytes + this.probation.bytes + this.protected.bytes;
  }

  has(key: string): boolean {
    return this.window.m.has(key) || this.probation.m.has(key) || this.protected.m.has(key);
  }

  access(key: string): boolean {
    this.sketch.increment(key);
    let s = this.window.drop(key);
    if (s !== undefined) {
      this.window.add(key, s);
      return true;
    }
    s = this.protected.drop(key);
    if (s !== undefined) {
      this.protected.add(key, s);
      return true;
    }
    s = this.probation.drop(key);
    if (s === undefined) return false;
    // A second hit in probation: promoted; protected's overflow goes back to probation's MRU end.
    this.protected.add(key, s);
    while (this.protected.bytes > this.protectedMax) {
      const k = this.protected.oldest() as string;
      this.probation.add(k, this.protected.drop(k) as number);
    }
    return true;
  }

  insert(key: string, size: number): string[] {
    this.remove(key);
    if (size > this.mainMax) return [key];
    this.window.add(key, size);
    const evicted: string[] = [];
    while (this.window.bytes > this.windowMax) {
      const cand = this.window.oldest() as string;
      const cs = this.window.drop(cand) as number;
      this.probation.add(cand, cs);
      // Main over its bytes: the candidate duels probation's (then protected's) LRU victims until it fits or loses.
      while (this.probation.bytes + this.protected.bytes > this.mainMax) {
        const victim = this.probation.oldest() ?? this.protected.oldest();
        if (victim === undefined || victim === cand) {
          this.probation.drop(cand);
          evicted.push(cand);
          break;
        }
        if (this.sketch.frequency(cand) > this.sketch.frequency(victim)) {
          this.probation.drop(victim) ?? this.protected.drop(victim);
          evicted.push(victim);
        } else {
          this.probation.drop(cand);
          evicted.push(cand);
          break;
        }
      }
    }
    return evicted;
  }

  remove(key: string): void {
    this.window.drop(key) ?? this.probation.drop(key) ?? this.protected.drop(key);
  }
}
