import assert from "node:assert/strict";
import { test } from "node:test";
import { handOut, join, pooledSlabs, release, retain, Slab } from "./slab.ts";

// A size no other test in this process uses: the pool is per size.
const SIZE = 4096 + 64;

test("a recycling slab is reused once its views are released and it is no longer carved", () => {
  const slab = new Slab(SIZE, { recycle: true });
  const a = slab.take(1000);
  const b = slab.take(1000);
  retain(a);
  retain(b);
  const first = a.buffer;
  const before = pooledSlabs();
  // Fill it until a take opens a new slab: the first one is retired but still held.
  let next = slab.take(SIZE / 4);
  while (next.buffer === first) next = slab.take(SIZE / 4);
  assert.equal(pooledSlabs(), before);
  release(a);
  assert.equal(pooledSlabs(), before, "b still holds it");
  release(b);
  assert.equal(pooledSlabs(), before + 1);
  // The next new slab is the pooled one.
  const second = next.buffer;
  while (next.buffer === second) next = slab.take(SIZE / 4);
  assert.equal(next.buffer, first);
  // The second one, never retained, is in the pool now.
  assert.equal(pooledSlabs(), before + 1);
});

test("a slab whose bytes were handed out is never reused; plain slabs are never pooled", () => {
  const slab = new Slab(SIZE, { recycle: true });
  const a = slab.take(1000);
  retain(a);
  handOut(a);
  const before = pooledSlabs();
  slab.close();
  release(a);
  assert.equal(pooledSlabs(), before);
  const plain = new Slab(SIZE);
  const p = plain.take(1000);
  retain(p);
  release(p);
  plain.take(SIZE / 4 + 1);
  assert.equal(pooledSlabs(), before);
});

test("join: adjacent views without a copy, others concatenated", () => {
  const slab = new Slab(SIZE);
  const a = slab.take(10).fill(1);
  const b = slab.take(20).fill(2);
  const j = join([a, b]);
  assert.equal(j.buffer, a.buffer);
  assert.equal(j.length, 30);
  const k = join([b, a]);
  assert.notEqual(k.buffer, a.buffer);
  assert.deepEqual([...k.subarray(0, 2)], [2, 2]);
});
