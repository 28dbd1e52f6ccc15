/**
 * Resume of a partial download: a leecher of ours fetching from a rate-limited seeder is stopped half-way (a clean
 * close in one case, kill -9 of its process in the other), started again on the same data dir, and completes
 * while downloading only about what was missing; the stored file's sha256 is the original's.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { openStoreAt } from "../../src/cas/open.ts";
import type { P2pNode } from "../../src/p2p/node.ts";
import { until } from "../../src/test/cli.ts";
import { makeNode } from "../../src/test/p2p.ts";

const dir = mkdtempSync(join(tmpdir(), "p2p-resume-"));
const nodes: P2pNode[] = [];
after(async () => {
  for (const n of nodes) await n.close().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});
const SIZE = 1024 * 1024;
const PIECE = 16 * 1024;
const PIECES = SIZE / PIECE;
const child = new URL("../../src/test/p2p-leech-child.ts", import.meta.url).pathname;

/** A seeder of a fresh random file, its upload capped so a download takes ~4 s. */
async function seed(name: string) {
  const file = join(dir, `${name}.bin`);
  const data = randomBytes(SIZE);
  writeFileSync(file, data);
  const seeder = makeNode(join(dir, `${name}-seed`), {
    host: "127.0.0.1",
    tracker: { port: 0, host: "127.0.0.1", intervalSec: 1 },
    uploadLimit: 256 * 1024,
  });
  nodes.push(seeder);
  await seeder.start();
  const pub = await seeder.publish(file, { pieceLength: PIECE });
  return { data, pub };
}

/** Restart a leecher on `ldir` (resume on) and check it finishes with few bytes beyond what was missing. */
async function finish(ldir: string, infohash: string, data: Buffer, haveBefore: number) {
  const again = makeNode(ldir, { host: "127.0.0.1", resume: true });
  nodes.push(again);
  await again.start();
  const t = await until("the resumed torrent", async () => again.torrents.get(infohash), 5_000);
  await t.done();
  const s = t.stats();
  const missing = (PIECES - haveBefore) * PIECE;
  process.stderr.write(
    `had ${haveBefore}/${PIECES} pieces, downloaded ${s.downloaded} bytes after restart (missing ${missing})\n`,
  );
  // Slack: pieces written in the last flush window before a kill, and endgame duplicates.
  assert.ok(s.downloaded <= missing + SIZE / 8, `downloaded ${s.downloaded} after restart, ${missing} were missing`);
  assert.ok(s.downloaded < SIZE * 0.75, "it did not start over");
  const id = t.storage?.fileIds?.[0] as string;
  const cas = openStoreAt(join(ldir, "cas"));
  const h = createHash("sha256");
  for await (const c of cas.get(id)) h.update(c);
  assert.equal(h.digest("hex"), createHash("sha256").update(data).digest("hex"));
  return again;
}

test("stopped half-way, restarted: completes from where it was", async () => {
  const { data, pub } = await seed("clean");
  const ldir = join(dir, "clean-leech");
  const leecher = makeNode(ldir, { host: "127.0.0.1", resume: true });
  await leecher.start();
  const t = leecher.add(readFileSync(pub.torrentFile));
  await until("half the pieces", async () => t.stats().have >= PIECES / 2, 15_000);
  await leecher.close();
  const have = t.stats().have;
  assert.ok(have < PIECES, "stopped before the end");
  const again = await finish(ldir, pub.infohash, data, have);
  const ls = again.torrents.get(pub.infohash)?.stats();
  assert.equal(ls?.recheckFailed, 0);
});

test("kill -9 half-way, restarted: completes from where it was", async () => {
  const { data, pub } = await seed("killed");
  const ldir = join(dir, "killed-leech");
  const p = spawn(process.execPath, [child, ldir, pub.torrentFile], { stdio: ["ignore", "pipe", "inherit"] });
  const exited = new Promise((r) => p.once("exit", r));
  let have = 0;
  p.stdout.setEncoding("utf8").on("data", (s: string) => {
    for (const m of s.matchAll(/have (\d+)/g)) have = Number(m[1]);
  });
  await until("half the pieces", async () => have >= PIECES / 2, 15_000);
  p.kill("SIGKILL");
  await exited;
  assert.ok(have < PIECES, "killed before the end");
  await finish(ldir, pub.infohash, data, have);
});
