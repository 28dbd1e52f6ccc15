/**
 * 1 GiB streamed through put and get with bounded memory: the input is generated as it is consumed (seeded
 * AES-CTR), the output hashed as it arrives, and the RSS of the process doing it (src/test/cas-stream-child.ts)
 * must stay within 64 MB of its base. The child runs with the flags the supervisor gives every service (1 MB young
 * generation, glibc mmap threshold fixed at 128 KiB): with Node's defaults the young generation alone may grow to
 * 48 MB of garbage before it is collected (measured: +77 MB at 1 GiB, against +25 MB with these flags).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";

const root = mkdtempSync(join(tmpdir(), "ami-cas-stream-"));
after(() => rmSync(root, { recursive: true, force: true }));
const child = new URL("../../src/test/cas-stream-child.ts", import.meta.url).pathname;

test("1 GiB put + get streams with RSS growth < 64 MB", () => {
  const size = 1024 ** 3;
  const out = execFileSync(process.execPath, ["--max-semi-space-size=1", child, root, String(size)], {
    env: { ...process.env, MALLOC_MMAP_THRESHOLD_: "131072" },
    encoding: "utf8",
    maxBuffer: 1024 * 1024,
  });
  const r = JSON.parse(out.trim().split("\n").pop()!);
  assert.equal(r.size, size);
  assert.equal(r.read, size);
  assert.equal(r.sha256, r.expected);
  assert.equal(r.got, r.expected);
  const mb = (b: number) => b / 1024 ** 2;
  const growth = mb(r.peak - r.base);
  console.log(
    `# 1 GiB: put ${(1024 / r.putS).toFixed(0)} MiB/s, get ${(1024 / r.getS).toFixed(0)} MiB/s, ${r.chunks} chunks, RSS growth ${growth.toFixed(1)} MB (base ${mb(r.base).toFixed(0)} MB)`,
  );
  assert.ok(growth < 64, `RSS grew ${growth.toFixed(1)} MB`);
});
