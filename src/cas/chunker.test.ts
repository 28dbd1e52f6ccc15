import assert from "node:assert/strict";
import { test } from "node:test";
import { prngBytes } from "../core/prng.ts";
import { type ChunkParams, chunkStream, GEAR } from "./chunker.ts";
import { sha256Hex } from "./ids.ts";

const p: ChunkParams = { min: 16 * 1024, avg: 64 * 1024, max: 256 * 1024 };

async function sizes(data: Buffer, pieces = 1): Promise<number[]> {
  const step = Math.ceil(data.length / pieces) || 1;
  const parts = Array.from({ length: pieces }, (_, i) => data.subarray(i * step, (i + 1) * step));
  const out: number[] = [];
  for await (const c of chunkStream(parts, p)) out.push(c.length);
  return out;
}

test("the gear table is fixed: changing it would change every id ever stored", () => {
  // splitmix32 from the seed "AMIC"; if this fails, new puts no longer dedupe against existing stores.
  assert.deepEqual(
    [GEAR[0], GEAR[1], GEAR[2], GEAR[3], GEAR[255]],
    [0x577e4dde, 0x602cf4c1, 0xc8e4faf8, 0x42109db9, 0x3d8b84cd],
  );
  assert.equal(new Set(GEAR).size, 256);
});

test("cuts do not depend on how the input is split into pieces", async () => {
  const data = prngBytes("split", 3_000_000);
  const whole = await sizes(data);
  assert.deepEqual(await sizes(data, 7), whole);
  assert.deepEqual(await sizes(data, 1000), whole);
  assert.equal(
    whole.reduce((a, b) => a + b, 0),
    data.length,
  );
});

test("chunk sizes stay within [min, max] and average near avg (normalized chunking)", async () => {
  const s = await sizes(prngBytes("dist", 32 * 1024 * 1024));
  for (const [i, n] of s.entries()) {
    assert.ok(n <= p.max);
    if (i < s.length - 1) assert.ok(n >= p.min, `chunk ${i}: ${n}`);
  }
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  assert.ok(mean > p.avg * 0.75 && mean < p.avg * 1.5, `mean ${mean}`);
});

test("zeros (no cut point ever matches) fall back to max-size chunks", async () => {
  const s = await sizes(Buffer.alloc(1_000_000));
  assert.deepEqual(s.slice(0, 3), [p.max, p.max, p.max]);
});

test("an insertion changes only the chunks around it", async () => {
  const hashes = async (d: Buffer) => {
    const out: string[] = [];
    for await (const c of chunkStream([d], p)) out.push(sha256Hex(c));
    return out;
  };
  const data = prngBytes("insert", 8_000_000);
  const edited = Buffer.concat([data.subarray(0, 4_000_000), Buffer.from("inserted"), data.subarray(4_000_000)]);
  const a = await hashes(data);
  const b = new Set(await hashes(edited));
  const common = a.filter((x) => b.has(x)).length;
  assert.ok(common >= a.length - 2, `${common} of ${a.length} chunks unchanged`);
});
