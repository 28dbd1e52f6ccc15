import assert from "node:assert/strict";
import { test } from "node:test";
import { rng } from "../core/prng.ts";
import { FrequencySketch, LruPolicy, WTinyLfuPolicy } from "./wtinylfu.ts";

test("sketch: the doorkeeper absorbs a first sighting; counts grow after; reset halves them", () => {
  const s = new FrequencySketch(1000);
  assert.equal(s.frequency("a"), 0);
  s.increment("a");
  assert.equal(s.frequency("a"), 1);
  for (let i = 0; i < 9; i++) s.increment("a");
  assert.equal(s.frequency("a"), 10);
  s.reset();
  assert.equal(s.frequency("a"), 4, "9 counted then halved (doorkeeper cleared)");
  for (let i = 0; i < 100; i++) s.increment("b");
  assert.ok(s.frequency("b") <= 16, "4-bit counters saturate");
});

test("W-TinyLFU: a scan of one-hit wonders does not flush a popular set (LRU does)", () => {
  const w = new WTinyLfuPolicy(100, 100);
  const l = new LruPolicy(100);
  for (const p of [w, l])
    for (let r = 0; r < 20; r++) for (let i = 0; i < 50; i++) if (!p.access(`hot${i}`)) p.insert(`hot${i}`, 1);
  for (const p of [w, l]) for (let i = 0; i < 1000; i++) if (!p.access(`scan${i}`)) p.insert(`scan${i}`, 1);
  const held = (p: WTinyLfuPolicy | LruPolicy) =>
    Array.from({ length: 50 }, (_, i) => p.has(`hot${i}`)).filter(Boolean).length;
  assert.ok(held(w) >= 49, `held ${held(w)}`); // the one in the 1-object window may go
  assert.equal(held(l), 0);
  assert.ok(w.bytes <= 100);
});

test("W-TinyLFU: bytes stay bounded; an object larger than main is refused; remove frees bytes", () => {
  const w = new WTinyLfuPolicy(1000, 10);
  assert.deepEqual(w.insert("huge", 5000), ["huge"]);
  for (let i = 0; i < 100; i++) w.insert(`k${i}`, 37);
  assert.ok(w.bytes <= 1000, `bytes ${w.bytes}`);
  const before = w.bytes;
  const some = Array.from({ length: 100 }, (_, i) => `k${i}`).find((k) => w.has(k)) as string;
  w.remove(some);
  assert.equal(w.bytes, before - 37);
  assert.equal(w.has(some), false);
});

test("W-TinyLFU: a second access in probation promotes; hits report true", () => {
  const w = new WTinyLfuPolicy(100, 100);
  for (let i = 0; i < 10; i++) w.insert(`k${i}`, 1);
  assert.equal(w.access("k0"), true);
  assert.equal(w.access("nope"), false);
});

/** Half skewed (a Zipf-like 1/rank draw over 2,000 keys), half short-lived keys: a new one every 10 requests,
 * each request of that half one of the 50 newest. Recency pays: the window should grow. */
function burstyTrace(count: number, seed: number): string[] {
  const rnd = rng(seed);
  const cdf: number[] = [];
  let sum = 0;
  for (let i = 1; i <= 2000; i++) {
    sum += 1 / i;
    cdf.push(sum);
  }
  const out: string[] = [];
  for (let r = 0; r < count; r++) {
    if (rnd() < 0.5) {
      const u = rnd() * sum;
      out.push(`z${cdf.findIndex((c) => c >= u)}`);
    } else out.push(`n${Math.max(0, Math.floor(r / 10) - Math.floor(rnd() * 50))}`);
  }
  return out;
}

function play(p: WTinyLfuPolicy | LruPolicy, trace: string[], check?: () => void): number {
  let hits = 0;
  for (const k of trace) {
    if (p.access(k)) hits++;
    else p.insert(k, 1);
    check?.();
  }
  return hits;
}

test("adaptive W-TinyLFU: on a recency-heavy trace the climber grows the window and beats the fixed 1 %", () => {
  const trace = burstyTrace(60_000, 3);
  const fixed = new WTinyLfuPolicy(100, 100);
  const adaptive = new WTinyLfuPolicy(100, 100, { adaptive: true });
  const f = play(fixed, trace);
  const a = play(adaptive, trace, () => assert.ok(adaptive.bytes <= 100, `bytes ${adaptive.bytes}`));
  assert.ok(adaptive.samples >= 50, `samples ${adaptive.samples}`); // one per 10 × 100 requests
  assert.ok(adaptive.windowMax > 10, `window ${adaptive.windowMax}`);
  assert.ok(a > f * 1.05, `adaptive ${a} vs fixed ${f} hits`);
  // Deterministic: the same trace gives the same hits and the same window.
  const again = new WTinyLfuPolicy(100, 100, { adaptive: true });
  assert.equal(play(again, trace), a);
  assert.equal(again.windowMax, adaptive.windowMax);
});

test("adaptive W-TinyLFU: the first decision shrinks the window (Caffeine starts towards LFU); it never goes below 1", () => {
  const w = new WTinyLfuPolicy(1000, 100, { adaptive: true, windowShare: 0.2 });
  const rnd = rng(9);
  // Requests until the first complete sample (10 × 100 expected items) with the cache at least half full.
  let n = 0;
  while (w.samples === 0 && n < 10_000) {
    const k = `k${Math.floor(rnd() * rnd() * 3000)}`;
    if (!w.access(k)) w.insert(k, 1);
    n++;
  }
  assert.equal(w.samples, 1);
  assert.ok(w.windowMax < 200, `window ${w.windowMax}`);
  // A stationary skewed trace, long: the window may move but stays at least 1 byte and the bytes stay bounded.
  const long = Array.from({ length: 50_000 }, () => `k${Math.floor(rnd() * rnd() * 3000)}`);
  play(w, long, () => assert.ok(w.bytes <= 1000));
  assert.ok(w.windowMax >= 1 && w.protectedMax >= 0);
});

test("adaptive W-TinyLFU: a warm candidate that loses the duel is admitted by the jitter only when the draw says so", () => {
  for (const [draw, admitted] of [
    [0, true],
    [0.5, false],
  ] as const) {
    const w = new WTinyLfuPolicy(10, 10, { adaptive: true, windowShare: 0.1, random: () => draw });
    // Main full of keys seen 15 times; the candidate seen 7 times (≥ 6, the jitter threshold) still loses on counts.
    for (let i = 0; i < 9; i++) for (let r = 0; r < 15; r++) if (!w.access(`hot${i}`)) w.insert(`hot${i}`, 1);
    for (let r = 0; r < 7; r++) w.access("warm");
    w.insert("warm", 1);
    w.access("next");
    w.insert("next", 1); // pushes "warm" out of the 1-object window into the duel
    assert.equal(w.has("warm"), admitted, `draw ${draw}`);
    assert.equal(w.jitterAdmits, admitted ? 1 : 0);
  }
});

test("sketch: Caffeine's counting (changed increments only) does not age on a saturated key; the plain one does", () => {
  const plain = new FrequencySketch(16, { doorkeeper: false });
  const changed = new FrequencySketch(16, { doorkeeper: false, countChanged: true });
  for (let i = 0; i < 1000; i++) {
    plain.increment("a");
    changed.increment("a");
  }
  assert.equal(changed.resets, 0);
  assert.equal(changed.frequency("a"), 15);
  assert.ok(plain.resets >= 5, `resets ${plain.resets}`);
});

test("sketch: conservative update leaves a colliding key's extra counters alone", () => {
  // With one counter a row (width is at least 256, so force collisions by sheer volume) compare over-estimates:
  // many distinct keys once each, then the estimate of an unseen key.
  const plain = new FrequencySketch(16, { doorkeeper: false });
  const cons = new FrequencySketch(16, { doorkeeper: false, conservative: true });
  for (let i = 0; i < 150; i++) {
    plain.increment(`x${i}`);
    cons.increment(`x${i}`);
  }
  let overPlain = 0;
  let overCons = 0;
  for (let i = 0; i < 200; i++) {
    overPlain += plain.frequency(`y${i}`);
    overCons += cons.frequency(`y${i}`);
  }
  assert.ok(overCons <= overPlain, `conservative ${overCons} vs plain ${overPlain}`);
});
