/** The filesystem backend through the shared conformance suite (conformance.ts), on a temp dir. */
import assert from "node:assert/strict";
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readSync,
  rmSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { prngBytes } from "../core/prng.ts";
import { casConformance, readAll } from "./conformance.ts";
import { FsCasStore } from "./fs-backend.ts";

casConformance("filesystem", async (params) => {
  const root = mkdtempSync(join(tmpdir(), "ami-cas-"));
  const store = new FsCasStore({ root, params, fsync: true });
  return {
    store,
    async damageChunk(hash) {
      const loc = await store.locate(hash);
      assert.ok(loc, `chunk ${hash} is stored`);
      const at = loc.off + Math.min(100, loc.len - 1);
      const fd = openSync(loc.path, "r+");
      const b = Buffer.alloc(1);
      readSync(fd, b, 0, 1, at);
      b[0] ^= 0x10;
      writeSync(fd, b, 0, 1, at);
      closeSync(fd);
    },
    async cleanup() {
      rmSync(root, { recursive: true, force: true });
    },
  };
});

test("gc removes the holds of an object that never committed (writer killed between hold and manifest)", async () => {
  const root = mkdtempSync(join(tmpdir(), "ami-cas-"));
  try {
    const store = new FsCasStore({ root, params: { min: 1024, avg: 4096, max: 16384 }, fsync: false });
    const kept = await store.put(Buffer.from("kept"), { hold: "pin" });
    const ghost = "e".repeat(64);
    mkdirSync(store.layout.holds(ghost));
    writeFileSync(join(store.layout.holds(ghost), "cGlu"), "");
    await store.gc();
    assert.ok(!existsSync(store.layout.holds(ghost)));
    assert.deepEqual((await store.stat(kept.id)).holds, ["pin"]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a store written before packs: its chunk files are read, and gc moves the live ones into a pack", async () => {
  const root = mkdtempSync(join(tmpdir(), "ami-cas-"));
  try {
    const params = { min: 1024, avg: 4096, max: 16384 };
    const data = prngBytes("legacy", 100_000);
    const dead = prngBytes("legacy-dead", 30_000);
    const old = new FsCasStore({ root, params, fsync: false });
    const kept = await old.put(data, { hold: "pin" });
    const gone = await old.put(dead);
    // Rewrite the store in the old layout: one file per chunk under chunks/<aa>/, no packs.
    for (const id of [kept.id, gone.id]) {
      for (const [h] of (await old.manifest(id)).chunks) {
        mkdirSync(dirname(old.layout.chunk(h)), { recursive: true });
        writeFileSync(old.layout.chunk(h), await old.readChunk(h));
      }
    }
    rmSync(old.layout.dir("packs"), { recursive: true });
    mkdirSync(old.layout.dir("packs"));
    const store = new FsCasStore({ root, params, fsync: false });
    assert.ok((await readAll(store, kept.id)).equals(data));
    const r = await store.gc();
    assert.equal(r.objectsDeleted, 1);
    assert.equal(
      readdirSync(store.layout.dir("chunks"), { recursive: true, withFileTypes: true }).filter((e) => e.isFile())
        .length,
      0,
    );
    assert.equal(store.packs.packs.size, 1);
    assert.equal(r.chunksKept, kept.chunks);
    assert.ok((await readAll(new FsCasStore({ root, params, fsync: false }), kept.id)).equals(data));
    assert.deepEqual((await store.verify()).corrupt, []);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
