/** The filesystem backend through the shared conformance suite (conformance.ts), on a temp dir. */
import assert from "node:assert/strict";
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readSync,
  rmSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { casConformance } from "./conformance.ts";
import { FsCasStore } from "./fs-backend.ts";

casConformance("filesystem", async (params) => {
  const root = mkdtempSync(join(tmpdir(), "ami-cas-"));
  const store = new FsCasStore({ root, params, fsync: true });
  return {
    store,
    async damageChunk(hash) {
      const fd = openSync(store.layout.chunk(hash), "r+");
      const b = Buffer.alloc(1);
      readSync(fd, b, 0, 1, 100);
      b[0] ^= 0x10;
      writeSync(fd, b, 0, 1, 100);
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
