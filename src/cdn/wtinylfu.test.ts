import assert from "node:assert/strict";
import { test } from "node:test";
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
