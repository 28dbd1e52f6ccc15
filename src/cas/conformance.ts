/**
 * One conformance suite for every CasStore backend (as the Matrix store's): round trips at the chunker's
 * boundaries, ranges, ids, dedupe, holds and GC, corruption detection, and GC racing puts and pins
 * (conformance-gc.ts). A backend's test file calls casConformance with a harness for its storage.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, test } from "node:test";
import type { AmiError } from "../core/errors.ts";
import { prngBytes, prngStream } from "../core/prng.ts";
import type { ChunkParams } from "./chunker.ts";
import { gcRace } from "./conformance-gc.ts";
import { cidFromSha256 } from "./ids.ts";
import { type CasStore, PIN } from "./types.ts";

export interface CasHarness {
  store: CasStore;
  /** Flip one bit of a stored chunk in the backend's own storage (a bad disk). */
  damageChunk(hash: string): Promise<void>;
  cleanup(): Promise<void>;
}

export const testParams: ChunkParams = { min: 16 * 1024, avg: 64 * 1024, max: 256 * 1024 };

export async function readAll(store: CasStore, id: string, range?: { start?: number; end?: number }) {
  const parts: Buffer[] = [];
  for await (const b of store.get(id, range)) parts.push(b);
  return Buffer.concat(parts);
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

export function casConformance(name: string, make: (params: ChunkParams) => Promise<CasHarness>): void {
  describe(`CAS conformance: ${name}`, () => {
    let h: CasHarness;
    let store: CasStore;
    before(async () => {
      h = await make(testParams);
      store = h.store;
    });
    after(() => h.cleanup());

    test("round trips at the chunker's boundaries: 0, 1, min-1, min, max, max+1 bytes and a few sizes between", async () => {
      const { min, avg, max } = testParams;
      for (const size of [0, 1, min - 1, min, avg, max, max + 1, 3 * max + 17, 1_000_003]) {
        const data = prngBytes(`rt-${size}`, size);
        const r = await store.put(data, { hold: PIN });
        assert.equal(r.size, size);
        assert.equal(r.sha256, sha(data), `sha256 of ${size} bytes`);
        assert.equal(r.cid, cidFromSha256(r.sha256));
        const back = await readAll(store, r.id);
        assert.ok(back.equals(data), `round trip of ${size} bytes`);
        const m = await store.manifest(r.id);
        assert.equal(m.chunks.length, r.chunks);
        for (const [i, [, n]] of m.chunks.entries()) {
          assert.ok(n <= max, `chunk ${i} of ${n} bytes > max`);
          if (i < m.chunks.length - 1) assert.ok(n >= min, `chunk ${i} of ${n} bytes < min`);
        }
        if (size <= min) assert.equal(r.chunks, size === 0 ? 0 : 1);
        if (size === max + 1) assert.ok(r.chunks >= 2);
        const st = await store.stat(r.id);
        assert.deepEqual(
          { size: st.size, sha256: st.sha256, pinned: st.pinned },
          { size, sha256: r.sha256, pinned: true },
        );
      }
    });

    test("the same bytes get the same id, sha256 and CID, streamed or whole; nothing new is stored twice", async () => {
      const data = prngBytes("same", 700_000);
      const a = await store.put(data);
      const pieces = [data.subarray(0, 1), data.subarray(1, 99_999), data.subarray(99_999)];
      const b = await store.put(pieces);
      assert.equal(b.id, a.id);
      assert.equal(b.cid, a.cid);
      assert.equal(b.newChunks, 0);
      assert.equal(b.newBytes, 0);
      assert.equal(await store.resolve(a.sha256), a.id);
      assert.equal(await store.resolve(a.cid), a.id);
      assert.equal(await store.resolve(a.id.slice(0, 12)), a.id);
      // The known CID of a known digest (sha256 of "hello world\n"), as `ipfs add --raw-leaves --cid-version 1` gives.
      const hello = await store.put(Buffer.from("hello world\n"));
      assert.equal(hello.cid, "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4");
    });

    test("range reads: any [start, end) equals the slice, across chunk boundaries", async () => {
      const data = prngBytes("range", 900_000);
      const r = await store.put(data, { hold: PIN });
      const m = await store.manifest(r.id);
      const edges = [0];
      for (const [, n] of m.chunks) edges.push(edges[edges.length - 1] + n);
      const cases: [number, number][] = [
        [0, 0],
        [0, 1],
        [5, 6],
        [0, data.length],
        [edges[1] - 1, edges[1] + 1],
        [edges[1], edges[2]],
        [123_456, 777_777],
        [data.length - 1, data.length],
        [data.length, data.length],
      ];
      for (const [s, e] of cases) {
        const got = await readAll(store, r.id, { start: s, end: e });
        assert.ok(got.equals(data.subarray(s, e)), `range ${s}-${e}`);
      }
      await assert.rejects(
        readAll(store, r.id, { start: 10, end: 5 }),
        (e: AmiError) => e.code === "AMI_INVALID_INPUT",
      );
    });

    test("unknown ids are M_NOT_FOUND; malformed ones AMI_INVALID_INPUT", async () => {
      await assert.rejects(store.stat("0".repeat(64)), (e: AmiError) => e.code === "M_NOT_FOUND");
      await assert.rejects(store.stat("../../etc"), (e: AmiError) => e.code === "AMI_INVALID_INPUT");
    });

    test("shifted content dedupes: bytes inserted at the front of 100 MB leave > 90 % of the chunks shared", async () => {
      const size = 100 * 1024 * 1024;
      const a = await store.put(prngStream("shift", size));
      const b = await store.put(
        (function* () {
          yield Buffer.from("a few bytes inserted at the front, not a multiple of anything: 0123456789");
          yield* prngStream("shift", size);
        })(),
      );
      const ma = new Set((await store.manifest(a.id)).chunks.map(([x]) => x));
      const shared = (await store.manifest(b.id)).chunks.filter(([x]) => ma.has(x)).length;
      const fraction = shared / b.chunks;
      assert.ok(fraction > 0.9, `only ${(fraction * 100).toFixed(1)} % shared`);
      assert.ok(b.newBytes < size * 0.1, `${b.newBytes} new bytes`);
      console.log(
        `# shifted 100 MB: ${(fraction * 100).toFixed(2)} % of ${b.chunks} chunks shared, ${b.newBytes} new bytes`,
      );
    });

    test("gc deletes unheld objects and unused chunks, keeps held ones and chunks they share", async () => {
      const shared = prngBytes("gc-shared", 600_000);
      const own = prngBytes("gc-own", 600_000);
      const kept = await store.put(shared, { hold: PIN });
      const gone = await store.put(Buffer.concat([shared, own]));
      const held = await store.put(prngBytes("gc-held", 300_000), { hold: "matrix:media" });
      await store.gc();
      await assert.rejects(store.stat(gone.id), (e: AmiError) => e.code === "M_NOT_FOUND");
      assert.ok((await readAll(store, kept.id)).equals(shared));
      assert.deepEqual((await store.stat(held.id)).holds, ["matrix:media"]);
      await store.hold(held.id, PIN);
      assert.deepEqual((await store.stat(held.id)).holds, ["matrix:media", PIN]);
      await store.release(held.id, "matrix:media");
      await store.release(held.id, PIN);
      const r = await store.gc();
      assert.ok(r.objectsDeleted >= 1);
      await assert.rejects(store.stat(held.id), (e: AmiError) => e.code === "M_NOT_FOUND");
      assert.ok((await readAll(store, kept.id)).equals(shared));
      const v = await store.verify();
      assert.deepEqual(v.corrupt, []);
    });

    test("a flipped bit in a stored chunk fails the read and shows in verify", async () => {
      const data = prngBytes("flip", 500_000);
      const r = await store.put(data, { hold: PIN });
      const [victim] = (await store.manifest(r.id)).chunks[1];
      await h.damageChunk(victim);
      await assert.rejects(
        readAll(store, r.id),
        (e: AmiError) => e.code === "AMI_CORRUPT" && e.message.includes(victim),
      );
      // A range that avoids the chunk still reads.
      const first = (await store.manifest(r.id)).chunks[0][1];
      assert.ok((await readAll(store, r.id, { start: 0, end: first })).equals(data.subarray(0, first)));
      const one = await store.verify(r.id);
      assert.deepEqual(one.corrupt, [{ chunk: victim, objects: [r.id], problem: "mismatch" }]);
      const all = await store.verify();
      assert.ok(all.corrupt.some((c) => c.chunk === victim && c.objects.includes(r.id)));
      await store.release(r.id, PIN);
      await store.gc(); // the damaged chunk goes with its only object
      assert.deepEqual((await store.verify()).corrupt, []);
    });

    test("gc racing puts, pins and unpins never loses a chunk of a held object (seeded)", async () => {
      for (const seed of [0x5eed, 7]) await gcRace(store, seed);
    });
  });
}
