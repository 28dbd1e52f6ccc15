/** The filesystem backend through the shared conformance suite (conformance.ts), on a temp dir. */
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
