/**
 * Resume state of a partial download (storage.ts): pieces flushed are picked up by a new TorrentStorage on the
 * same dir; a piece written but not yet flushed (a crash before the fdatasync + bitfield write) is not counted;
 * a "verified" piece whose bytes were corrupted on disk is caught by the re-check and dropped.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { openStoreAt } from "../cas/open.ts";
import { createTorrent } from "./create.ts";
import { type Metainfo, wireHash } from "./metainfo.ts";
import { TorrentStorage } from "./storage.ts";

const dir = mkdtempSync(join(tmpdir(), "p2p-storage-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const PIECE = 16 * 1024;

async function setup(name: string): Promise<{ meta: Metainfo; data: Buffer; data_dir: string }> {
  const data = randomBytes(PIECE * 8 + 1000);
  const file = join(dir, `${name}.bin`);
  writeFileSync(file, data);
  const { meta } = await createTorrent([{ abs: file, path: [], length: data.length }], name, {
    pieceLength: PIECE,
    version: "v1",
  });
  return { meta, data, data_dir: join(dir, name) };
}
const piece = (data: Buffer, i: number) => data.subarray(i * PIECE, (i + 1) * PIECE);

test("flushed pieces survive a restart; an unflushed one does not count", async () => {
  const { meta, data, data_dir } = await setup("a");
  const cas = openStoreAt(join(data_dir, "cas"));
  const s1 = new TorrentStorage(meta, cas, data_dir);
  for (const i of [0, 3, 8]) assert.equal(await s1.write(i, piece(data, i)), true);
  await s1.flush();
  assert.equal(await s1.write(5, piece(data, 5)), true);
  // "Crash": no close, no flush; piece 5's bytes may be in the file but the bitfield does not name it.
  const s2 = new TorrentStorage(meta, cas, data_dir);
  assert.deepEqual(await s2.load(), [0, 3, 8]);
  assert.equal(s2.haveCount, 3);
  assert.equal(s2.recheckFailed, 0);
  await s1.close();
  await s2.close();
  // After a clean close piece 5 is durable too.
  const s3 = new TorrentStorage(meta, cas, data_dir);
  assert.deepEqual(await s3.load(), [0, 3, 5, 8]);
  for (const i of [1, 2, 4, 6, 7]) await s3.write(i, piece(data, i));
  assert.equal(s3.complete, true);
  await s3.finalize();
  const ids = s3.fileIds as string[];
  assert.equal((await cas.stat(ids[0] as string)).size, data.length);
});

test("a corrupted 'verified' piece in the temp file is caught by the re-check and dropped", async () => {
  const { meta, data, data_dir } = await setup("b");
  const cas = openStoreAt(join(data_dir, "cas"));
  const s1 = new TorrentStorage(meta, cas, data_dir);
  for (const i of [1, 2, 6]) await s1.write(i, piece(data, i));
  await s1.close();
  const part = join(data_dir, "partial", `${wireHash(meta).toString("hex")}.part`);
  const fd = openSync(part, "r+");
  writeSync(fd, Buffer.from([data[2 * PIECE + 77]! ^ 0xff]), 0, 1, 2 * PIECE + 77);
  closeSync(fd);
  const s2 = new TorrentStorage(meta, cas, data_dir);
  assert.deepEqual(await s2.load(), [1, 6]);
  assert.equal(s2.recheckFailed, 1);
  await s2.close();
  // The bitfield was rewritten: a third start re-checks only what survived.
  const s3 = new TorrentStorage(meta, cas, data_dir);
  assert.deepEqual(await s3.load(), [1, 6]);
  assert.equal(s3.recheckFailed, 0);
  await s3.close();
});
