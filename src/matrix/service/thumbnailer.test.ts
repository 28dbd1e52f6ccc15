/**
 * The thumbnail cache shared by the workers of a scaled-out homeserver (one directory, two Thumbnailer instances as
 * two workers would have): a missing thumbnail asked of both at once is made once (the O_EXCL lock file), the waiter
 * reading the maker's file; a lock whose maker died (stale) or whose maker failed (removed without a file) does not
 * stop the thumbnail being made.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import sharp from "sharp";
import { LOCK_STALE_MS, Thumbnailer } from "./thumbnailer.ts";

const root = mkdtempSync(join(tmpdir(), "thumbs-"));
after(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
/** A fresh image (its own content address, so its own cache directory) and its sha256. */
async function image(): Promise<{ bytes: Buffer; sha256: string }> {
  n++;
  const bytes = await sharp({ create: { width: 200 + n, height: 150, channels: 3, background: "#3366cc" } })
    .png()
    .toBuffer();
  return { bytes, sha256: createHash("sha256").update(bytes).digest("hex") };
}

const small = { width: 32, height: 32, method: "crop", animated: false } as const;
const medium = { width: 96, height: 96, method: "crop", animated: false } as const;

let dir: string;
before(() => {
  dir = join(root, "thumbnails");
});

/** A loader of `bytes` that counts its calls and takes `delayMs` (a slow read of the original). */
function loader(bytes: Buffer, delayMs = 0) {
  const l = {
    calls: 0,
    load: async () => {
      l.calls++;
      await sleep(delayMs);
      return bytes;
    },
  };
  return l;
}

test("two workers asked for one missing thumbnail at once: one makes it, the other reads its file", async () => {
  const a = new Thumbnailer(dir, 32_000_000);
  const b = new Thumbnailer(dir, 32_000_000);
  for (let round = 0; round < 3; round++) {
    const img = await image();
    // The original's meta.json is there already (a first thumbnail): the render is what remains to share.
    await a.thumbnail(img.sha256, loader(img.bytes).load, small);
    const la = loader(img.bytes, 200);
    const lb = loader(img.bytes, 200);
    const [ta, tb] = await Promise.all([
      a.thumbnail(img.sha256, la.load, medium),
      b.thumbnail(img.sha256, lb.load, medium),
    ]);
    assert.equal(la.calls + lb.calls, 1, "the original was read, and the thumbnail rendered, by one worker only");
    assert.ok(ta.bytes.equals(tb.bytes));
    assert.equal(ta.contentType, "image/png");
    const files = readdirSync(join(dir, img.sha256.slice(0, 2), img.sha256));
    assert.deepEqual(
      files.filter((f) => f.startsWith(".")),
      [],
      "no lock or temp file left",
    );
  }
});

test("a stale lock (its worker died mid-render) is taken over; a fresh lock removed without a file is too", async () => {
  const a = new Thumbnailer(dir, 32_000_000);
  const img = await image();
  await a.thumbnail(img.sha256, loader(img.bytes).load, small);
  const cache = join(dir, img.sha256.slice(0, 2), img.sha256);
  const lock = join(cache, ".96x96-crop.png.lock");
  writeFileSync(lock, "");
  const old = (Date.now() - LOCK_STALE_MS - 5_000) / 1000;
  utimesSync(lock, old, old);
  const t0 = Date.now();
  const l = loader(img.bytes);
  const t = await a.thumbnail(img.sha256, l.load, medium);
  assert.equal(t.width, 96);
  assert.equal(l.calls, 1);
  assert.ok(Date.now() - t0 < 5_000, "not held up by the dead worker's lock");
  assert.equal(existsSync(lock), false);

  // A live worker's lock: this one waits; the other fails (removes its lock, no file): this one makes it.
  const img2 = await image();
  await a.thumbnail(img2.sha256, loader(img2.bytes).load, small);
  const lock2 = join(dir, img2.sha256.slice(0, 2), img2.sha256, ".96x96-crop.png.lock");
  writeFileSync(lock2, "");
  const l2 = loader(img2.bytes);
  const waiting = a.thumbnail(img2.sha256, l2.load, medium);
  await sleep(300);
  assert.equal(l2.calls, 0, "waiting for the lock's holder");
  rmSync(lock2);
  assert.equal((await waiting).width, 96);
  assert.equal(l2.calls, 1);
});
