/**
 * kill -9 of a process in the middle of a put: no object becomes visible, a store opened afterwards works, and gc
 * removes the dead writer's temp files (the pack being written), lease and the packs it had finished (the child
 * starts a new pack every 2 MiB, so a killed put leaves named packs whose chunks nothing references).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { readAll, testParams } from "../../src/cas/conformance.ts";
import { FsCasStore } from "../../src/cas/fs-backend.ts";
import { PIN } from "../../src/cas/types.ts";
import { prngBytes } from "../../src/core/prng.ts";
import { until } from "../../src/test/cli.ts";

const root = mkdtempSync(join(tmpdir(), "ami-cas-crash-"));
after(() => rmSync(root, { recursive: true, force: true }));
const child = new URL("../../src/test/cas-put-child.ts", import.meta.url).pathname;
/** Chunks in named packs (a fresh look, as another process sees them). */
const chunkCount = async () => {
  const s = new FsCasStore({ root, params: testParams });
  await s.packs.refresh(true);
  return s.packs.chunkCount;
};
const leaseOf = (pid: number) =>
  readdirSync(join(root, "tmp")).some((f) => f.startsWith(`${pid}-`) && f.endsWith(".lease"));

test("kill -9 during put leaves no visible object; gc cleans up after the dead writer", async () => {
  const store = new FsCasStore({ root, params: testParams });
  const kept = await store.put(prngBytes("survivor", 400_000), { hold: PIN });
  const before = await chunkCount();
  for (let round = 0; round < 3; round++) {
    const p = spawn(process.execPath, [child, root, String(4 * 1024 ** 3), String(2 * 1024 ** 2)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const exited = new Promise((r) => p.once("exit", r));
    // Kill at a different point each round, once the put is well under way: packs named, more being written.
    const named = before + 40 + round * 37;
    await until("chunks being written", async () => leaseOf(p.pid!) && (await chunkCount()) >= named, 60_000);
    p.kill("SIGKILL");
    await exited;
    const objects = await store.list();
    assert.deepEqual(
      objects.map((o) => o.id),
      [kept.id],
      "only the object committed before the kill is visible",
    );
  }
  assert.ok(readdirSync(join(root, "tmp")).length >= 1, "the dead writers left their lease (and maybe a temp file)");
  const r = await store.gc();
  assert.ok(r.tempFilesRemoved >= 3, `${r.tempFilesRemoved} temp files removed`);
  assert.ok(r.chunksDeleted >= 114, `${r.chunksDeleted} orphan chunks deleted`);
  assert.deepEqual(readdirSync(join(root, "tmp")), []);
  assert.equal(await chunkCount(), before);
  assert.ok((await readAll(store, kept.id)).equals(prngBytes("survivor", 400_000)));
  assert.deepEqual((await store.verify()).corrupt, []);
  console.log(`# kill -9 x3 mid-put: gc removed ${r.tempFilesRemoved} temp files and ${r.chunksDeleted} orphan chunks`);
});
