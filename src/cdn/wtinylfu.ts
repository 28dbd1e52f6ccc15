/**
 * Admission and eviction for the edge's memory tier: W-TinyLFU (Einziger, Friedman, Manes 2017), weighted by bytes.
 * A small window LRU (1 % of the bytes at start) takes every new object; what falls out of it is a candidate for the
 * main area, a segmented LRU (probation, protected ≤ 80 %). A candidate enters main only if its estimated frequency
 * beats the probation victim's; the estimate comes from a count-min sketch (4 rows of 4-bit counters, halved every
 * `sampleSize` counted increments so old popularity fades).
 * Two variants: the fixed one (1 % window, a doorkeeper Bloom filter in front of the sketch) and the adaptive one
 * the edge uses, after Caffeine: a hill climber resizes the window from the sampled hit rate, the sketch has no
 * doorkeeper and counts like Caffeine's (changed-only increments, conservative update), and a warm losing candidate
 * is sometimes admitted anyway (HashDoS protection). Plain LRU is here too: the hit-ratio benchmark's baseline.
 */

import { rng } from "../core/prng.ts";

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

/** Sketch options: the baseline is the plain count-min; `conservative` + `countChanged` are the adaptive policy's. */
export interface SketchOptions {
  /** Conservative update: only the counters at the item's current minimum grow (fewer over-estimates). */
  conservative?: boolean;
  /**
   * Caffeine's sample count: only increments that changed a counter (or set the doorkeeper) count towards the
   * reset, and after a reset the count is halved less a quarter of the odd counters (the halving's rounding loss).
   */
  countChanged?: boolean;
  /** The doorkeeper Bloom filter in front (default on). */
  doorkeeper?: boolean;
  /** Requests between ageing resets, in expected items (default 10). */
  sampleFactor?: number;
}

/** Count-min sketch of 4-bit counters (4 rows) with periodic halving, fronted by a doorkeeper Bloom filter. */
export class FrequencySketch {
  private readonly rows: Uint8Array[];
  private readonly mask: number;
  private readonly door: Uint8Array;
  private readonly doorBits: number;
  private additions = 0;
  private readonly conservative: boolean;
  private readonly countChanged: boolean;
  private readonly doorkeeper: boolean;
  /** How many (counted) increments between two ageing resets: 10 × the expected items. */
  readonly sampleSize: number;
  /** Resets so far (ageing passes). */
  resets = 0;

  constructor(expectedItems: number, opts: SketchOptions = {}) {
    // 16 counters per expected item a row (Caffeine packs 16 in each of its nextPow2(items) longs): few collisions.
    const width = 2 ** Math.max(8, Math.ceil(Math.log2(Math.max(16, expectedItems) * 16)));
    this.mask = width - 1;
    this.rows = [0, 1, 2, 3].map(() => new Uint8Array(width));
    this.doorBits = width * 8;
    this.door = new Uint8Array(this.doorBits / 8);
    this.sampleSize = (opts.sampleFactor ?? 10) * Math.max(16, expectedItems);
    this.doorkeeper = opts.doorkeeper ?? true;
    this.conservative = opts.conservative ?? false;
    this.countChanged = opts.countChanged ?? false;
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
    let changed = false;
    if (this.doorkeeper && !this.doorHas(h1, h2)) {
      this.doorSet(h1, h2);
      changed = true;
    } else {
      let min = 15;
      if (this.conservative) for (let i = 0; i < 4; i++) min = Math.min(min, this.rows[i][(h1 + i * h2) & this.mask]);
      for (let i = 0; i < 4; i++) {
        const row = this.rows[i];
        const j = (h1 + i * h2) & this.mask;
        if (row[j] < 15 && (!this.conservative || row[j] === min)) {
          row[j]++;
          changed = true;
        }
      }
    }
    if ((changed || !this.countChanged) && ++this.additions >= this.sampleSize) this.reset();
  }

  frequency(key: string): number {
    const h1 = fnv1a(key, 0);
    const h2 = fnv1a(key, 0x9e3779b9) | 1;
    let min = 15;
    for (let i = 0; i < 4; i++) min = Math.min(min, this.rows[i][(h1 + i * h2) & this.mask]);
    return this.doorkeeper ? min + (this.doorHas(h1, h2) ? 1 : 0) : min;
  }

  /** Ageing: every counter halved, the doorkeeper cleared. */
  reset(): void {
    let odd = 0;
    for (const row of this.rows)
      for (let j = 0; j < row.length; j++) {
        odd += row[j] & 1;
        row[j] >>= 1;
      }
    this.door.fill(0);
    this.resets++;
    this.additions = this.countChanged
      ? Math.max(0, Math.floor((this.additions - odd / 4) / 2))
      : Math.floor(this.additions / 2);
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

export interface WTinyLfuOptions {
  /** The window's initial part of the bytes (1 %). */
  windowShare?: number;
  /**
   * Caffeine's adaptive variant: a hill climber moves bytes between the window and main after each sample of
   * 10 × expected items requests; admission jitter; the sketch's conservative update and changed-only counting.
   * Off: the fixed-window policy (the hit-ratio bench's baseline).
   */
  adaptive?: boolean;
  /** Random source for the admission jitter (default: seeded, so runs repeat). */
  random?: () => number;
  /**
   * Hit-rate changes within this many standard errors of a sample's hit rate count as noise: the window stays put
   * (the step still decays). 0: Caffeine's climber, which follows every change (on a stationary trace it then
   * random-walks the window away from its best size). Default 1 when adaptive.
   */
  noiseBand?: number;
  /** Overrides of the sketch's options (the bench's ablations). */
  sketch?: SketchOptions;
}

/** The climber's first step and restart step: 6.25 % of the bytes. */
const STEP_SHARE = 0.0625;
/** Each step is 98 % of the one before while the hit rate moves by less than RESTART (5 points). */
const STEP_DECAY = 0.98;
const RESTART = 0.05;
/** A losing candidate this popular (or more) is still admitted once in 128 duels: HashDoS protection. */
const JITTER_FREQ = 6;
const PROTECTED_SHARE = 0.8;

export class WTinyLfuPolicy implements CachePolicy {
  private readonly window = new Segment();
  private readonly probation = new Segment();
  private readonly protected = new Segment();
  readonly sketch: FrequencySketch;
  /** The window's and protected segment's current maxima (bytes); main is whatever the window leaves. */
  windowMax: number;
  protectedMax: number;
  /** The largest object taken: main's initial bytes. */
  private readonly admitMax: number;
  readonly adaptive: boolean;
  private readonly random: () => number;
  // Hill climber state.
  private hits = 0;
  private misses = 0;
  private previousHitRate = 0;
  /** The next move in bytes, signed: > 0 grows the window. Caffeine starts by shrinking it. */
  stepSize: number;
  /** Bytes still to move (a move stops at an object larger than what is left of it). */
  private adjustment = 0;
  /** Completed samples (climber decisions) and admissions won by jitter, for tests and the bench. */
  samples = 0;
  jitterAdmits = 0;
  private readonly noiseBand: number;

  /** `expectedItems`: about how many objects fit (sizes the sketch and the climber's sample). */
  readonly maxBytes: number;
  constructor(maxBytes: number, expectedItems: number, opts: WTinyLfuOptions = {}) {
    this.maxBytes = maxBytes;
    this.windowMax = Math.max(1, Math.floor(maxBytes * (opts.windowShare ?? 0.01)));
    this.admitMax = maxBytes - this.windowMax;
    this.protectedMax = Math.floor(this.admitMax * PROTECTED_SHARE);
    this.adaptive = opts.adaptive ?? false;
    this.random = opts.random ?? rng(0x5eed);
    this.sketch = new FrequencySketch(expectedItems, {
      ...(this.adaptive ? { conservative: true, countChanged: true, doorkeeper: false } : {}),
      ...opts.sketch,
    });
    this.stepSize = -STEP_SHARE * maxBytes;
    this.noiseBand = opts.noiseBand ?? 1;
  }

  get bytes(): number {
    return this.window.bytes + this.probation.bytes + this.protected.bytes;
  }

  has(key: string): boolean {
    return this.window.m.has(key) || this.probation.m.has(key) || this.protected.m.has(key);
  }

  access(key: string): boolean {
    this.sketch.increment(key);
    const hit = this.touch(key);
    if (this.adaptive) {
      if (hit) this.hits++;
      else this.misses++;
      this.climb();
    }
    return hit;
  }

  private touch(key: string): boolean {
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
    this.demoteProtected();
    return true;
  }

  private demoteProtected(): void {
    while (this.protected.bytes > this.protectedMax) {
      const k = this.protected.oldest() as string;
      this.probation.add(k, this.protected.drop(k) as number);
    }
  }

  /**
   * The hill climber (Caffeine's): once a sample of `sketch.sampleSize` requests is complete (and the cache at
   * least half full), compare its hit rate with the previous sample's. Better or equal: keep going the same way;
   * worse: turn back. The step decays by 2 % a sample, and restarts at 6.25 % of the bytes when the hit rate jumps
   * by 5 points or more (the workload changed).
   */
  private climb(): void {
    if (this.hits + this.misses >= this.sketch.sampleSize) {
      if (this.bytes < this.maxBytes / 2) {
        this.hits = this.misses = 0;
        this.previousHitRate = 0;
      } else this.determineAdjustment();
    }
    if (this.adjustment > 0) this.increaseWindow();
    else if (this.adjustment < 0) this.decreaseWindow();
  }

  private determineAdjustment(): void {
    const n = this.hits + this.misses;
    const rate = this.hits / n;
    const change = rate - this.previousHitRate;
    // The standard error of the difference of two samples' hit rates.
    const noise = this.noiseBand * Math.sqrt((2 * rate * (1 - rate)) / n);
    if (Math.abs(change) < noise) {
      this.stepSize *= STEP_DECAY;
      this.hits = this.misses = 0;
      this.samples++;
      return;
    }
    const amount = change >= 0 ? this.stepSize : -this.stepSize;
    this.stepSize =
      Math.abs(change) >= RESTART ? STEP_SHARE * this.maxBytes * Math.sign(amount || 1) : STEP_DECAY * amount;
    this.previousHitRate = rate;
    this.adjustment = Math.trunc(amount);
    this.hits = this.misses = 0;
    this.samples++;
  }

  /** Window grows by what protected gives up; probation's (then protected's) LRU objects move into the window. */
  private increaseWindow(): void {
    if (this.protectedMax === 0) return;
    let quota = Math.min(this.adjustment, this.protectedMax);
    this.protectedMax -= quota;
    this.windowMax += quota;
    this.demoteProtected();
    let moved = false;
    for (;;) {
      let from = this.probation;
      let k = from.oldest();
      if (k === undefined || quota < (from.m.get(k) as number)) {
        from = this.protected;
        k = from.oldest();
      }
      if (k === undefined) break;
      const s = from.m.get(k) as number;
      if (quota < s) break;
      quota -= s;
      from.drop(k);
      this.window.add(k, s);
      moved = true;
    }
    // What could not move stays pending while objects still move (none moved: dropped, not retried every request).
    this.protectedMax += quota;
    this.windowMax -= quota;
    this.adjustment = moved ? quota : 0;
  }

  /** Window shrinks (never below 1 byte): its LRU objects move to probation, protected may grow by as much. */
  private decreaseWindow(): void {
    if (this.windowMax <= 1) {
      this.adjustment = 0;
      return;
    }
    let quota = Math.min(-this.adjustment, Math.max(0, this.windowMax - 1));
    this.protectedMax += quota;
    this.windowMax -= quota;
    let moved = false;
    for (;;) {
      const k = this.window.oldest();
      if (k === undefined) break;
      const s = this.window.m.get(k) as number;
      if (quota < s) break;
      quota -= s;
      this.window.drop(k);
      this.probation.add(k, s);
      moved = true;
    }
    this.protectedMax -= quota;
    this.windowMax += quota;
    this.adjustment = moved ? -quota : 0;
  }

  /** TinyLFU's duel: the candidate enters main only if the sketch counts it more often than the victim. */
  private admit(cand: string, victim: string): boolean {
    const cf = this.sketch.frequency(cand);
    if (cf > this.sketch.frequency(victim)) return true;
    // HashDoS: an attacker could keep a victim's count high by colliding keys; a warm candidate sometimes wins.
    if (this.adaptive && cf >= JITTER_FREQ && Math.floor(this.random() * 128) === 0) {
      this.jitterAdmits++;
      return true;
    }
    return false;
  }

  insert(key: string, size: number): string[] {
    this.remove(key);
    if (size > this.admitMax) return [key];
    this.window.add(key, size);
    const evicted: string[] = [];
    while (this.window.bytes > this.windowMax) {
      const cand = this.window.oldest() as string;
      const cs = this.window.drop(cand) as number;
      this.probation.add(cand, cs);
      // Over the bytes: the candidate duels probation's (then protected's) LRU victims until it fits or loses.
      while (this.bytes > this.maxBytes) {
        const victim = this.probation.oldest() ?? this.protected.oldest();
        if (victim === undefined || victim === cand) {
          this.probation.drop(cand);
          evicted.push(cand);
          break;
        }
        if (this.admit(cand, victim)) {
          this.probation.drop(victim) ?? this.protected.drop(victim);
          evicted.push(victim);
        } else {
          this.probation.drop(cand);
          evicted.push(cand);
          break;
        }
      }
    }
    // The window under its maximum (it grew, or objects left it) while main is full: main's LRU objects go.
    while (this.bytes > this.maxBytes) {
      const victim = this.probation.oldest() ?? this.protected.oldest() ?? (this.window.oldest() as string);
      this.probation.drop(victim) ?? this.protected.drop(victim) ?? this.window.drop(victim);
      evicted.push(victim);
    }
    return evicted;
  }

  remove(key: string): void {
    this.window.drop(key) ?? this.probation.drop(key) ?? this.protected.drop(key);
  }
}
