/**
 * The wake-ups of downloads waiting for an asynchronous upload (service/media.ts): an upload that commits between a
 * download's store read and its wait still wakes it; with several workers an upload on one wakes the waiters of
 * another over the bus (real Redis), and only the waiters of that media ID. And the hold of a row write that lost
 * to a concurrent one (two workers uploading to one created ID, or fetching one remote file, at once).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { openStoreAt } from "../../cas/open.ts";
import { silentLogger } from "../../core/logger.ts";
import { LocalBus, RedisBus } from "../cluster/bus.ts";
import { matrixSchema } from "../config.ts";
import { openStore } from "../store/open.ts";
import { MediaService, mediaHold, releaseLostPut } from "./media.ts";

const dir = mkdtempSync(join(tmpdir(), "media-svc-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const config = matrixSchema.parse({ serverName: "localhost" }).media;
const never = new AbortController().signal;
/** The store the services keep URL previews in (unused here). */
const previewStore = await openStore("sqlite::memory:", dir);
after(() => previewStore.close());

/** How long `p` took to settle, in ms. */
async function took(p: Promise<void>): Promise<number> {
  const t0 = Date.now();
  await p;
  return Date.now() - t0;
}

test("one process: an upload between the read and the wait wakes it; otherwise the wait runs to its time", async () => {
  const media = new MediaService(config, dir, { bus: new LocalBus(), workers: 1 }, previewStore.media);
  const watch = media.watchUpload("m1");
  media.uploaded("m1"); // after the caller's store read, before it waits
  assert.ok((await took(watch.wait(5_000, never))) < 100, "the wake-up was kept for the wait");
  assert.ok((await took(watch.wait(150, never))) >= 140, "woken once: the next wait runs to its time");
  media.uploaded("other");
  const aborter = new AbortController();
  const waiting = watch.wait(5_000, aborter.signal);
  setTimeout(() => aborter.abort(), 50);
  assert.ok((await took(waiting)) < 1_000, "an abort ends the wait");
  watch.close();
});

test("several workers: an upload on one wakes the download waiting on the other, over Redis", async () => {
  const channel = `ami-test:media:${randomBytes(4).toString("hex")}`;
  const busA = new RedisBus("redis://127.0.0.1:6379", channel, "a", silentLogger);
  const busB = new RedisBus("redis://127.0.0.1:6379", channel, "b", silentLogger);
  try {
    await Promise.all([busA.ready(), busB.ready()]);
    const a = new MediaService(config, dir, { bus: busA, workers: 2 }, previewStore.media);
    const b = new MediaService(config, dir, { bus: busB, workers: 2 }, previewStore.media);
    const watch = b.watchUpload("m2");
    const other = b.watchUpload("m3");
    const t0 = Date.now();
    const waiting = took(watch.wait(20_000, never));
    const notWoken = took(other.wait(300, never));
    setTimeout(() => a.uploaded("m2"), 50);
    assert.ok((await waiting) < 1_000, "woken over the bus, not by the timeout");
    await notWoken;
    assert.ok(Date.now() - t0 >= 290, "a waiter of another media ID is not woken");
    watch.close();
    other.close();
  } finally {
    await Promise.all([busA.close(), busB.close()]);
  }
});

test("a row write lost to a concurrent one: the same bytes keep the winner's hold, other bytes are released", async () => {
  const store = await openStore("sqlite::memory:", dir);
  const cas = openStoreAt(join(dir, "cas"));
  const hs = { store, cas };
  try {
    const bytes = randomBytes(10_000);
    const row = (mediaId: string, sha256: string, size: number) => ({
      mediaId,
      uploader: "@u:localhost",
      contentType: "application/x-test",
      filename: null,
      size,
      sha256,
      createdTs: Date.now(),
      quarantinedBy: null,
    });
    // The winner stored its row; the loser put the same bytes (the same object) under the same hold.
    const won = await cas.put(bytes, { hold: mediaHold("m4") });
    await store.media.putMedia(row("m4", won.sha256, won.size));
    const lost = await cas.put(bytes, { hold: mediaHold("m4") });
    assert.equal(lost.id, won.id);
    assert.equal((await releaseLostPut(hs, "m4", lost))?.sha256, won.sha256);
    assert.deepEqual((await cas.stat(won.id)).holds, [mediaHold("m4")], "the winner's hold stays");
    // A loser with other bytes lets its own object go.
    const other = await cas.put(randomBytes(10_000), { hold: mediaHold("m4") });
    await releaseLostPut(hs, "m4", other);
    assert.deepEqual((await cas.stat(other.id)).holds, []);
    // No row at all (the write failed for another reason): released.
    const alone = await cas.put(randomBytes(10_000), { hold: mediaHold("m5") });
    assert.equal(await releaseLostPut(hs, "m5", alone), null);
    assert.deepEqual((await cas.stat(alone.id)).holds, []);
  } finally {
    await store.close();
  }
});
