/** Conformance: the MediaStore — the rows describing uploads. */
import assert from "node:assert/strict";
import { type MakeStore, rejectsWith, storeTest } from "./helpers.ts";

export function mediaTests(make: MakeStore): void {
  storeTest(make, "media: put, get, duplicate ID rejected", async (s) => {
    const m = {
      mediaId: "AbC123",
      uploader: "@alice:hs",
      contentType: "image/png",
      filename: "a b ü.png",
      size: 1234,
      sha256: "00ff",
      createdTs: 99,
      quarantinedBy: null,
    };
    await s.media.putMedia(m);
    await s.media.putMedia({ ...m, mediaId: "x2", filename: null, size: 0 });
    assert.deepEqual(await s.media.getMedia("AbC123"), m);
    assert.deepEqual(await s.media.getMedia("x2"), { ...m, mediaId: "x2", filename: null, size: 0 });
    assert.equal(await s.media.getMedia("abc123"), null);
    await rejectsWith(s.media.putMedia(m), "M_CANNOT_OVERWRITE_MEDIA");
    assert.equal(await s.media.uploadedBytesSince("@alice:hs", 0), 1234);
    assert.equal(await s.media.uploadedBytesSince("@alice:hs", 100), 0);
    await s.media.putMedia({ ...m, mediaId: "x3", size: 10_000_000_000, createdTs: 200 });
    assert.equal(await s.media.uploadedBytesSince("@alice:hs", 99), 10_000_001_234);
    assert.equal(await s.media.uploadedBytesSince("@bob:hs", 0), 0);
  });
}

export function pendingMediaTests(make: MakeStore): void {
  storeTest(make, "media: pending IDs — per-user limit, expiry, completion once", async (s) => {
    const p = (mediaId: string, userId = "@a:hs", createdTs = 1000, expiresTs = 5000) => ({
      mediaId,
      userId,
      createdTs,
      expiresTs,
    });
    assert.equal(await s.media.createPending(p("p1"), 2, 1000), true);
    assert.equal(await s.media.createPending(p("p2", "@a:hs", 1100, 4000), 2, 1100), true);
    assert.equal(await s.media.createPending(p("p3"), 2, 1200), false, "the third is over the limit");
    assert.equal(await s.media.createPending(p("b1", "@b:hs"), 2, 1200), true, "the limit is per user");
    assert.deepEqual(await s.media.getPending("p2"), p("p2", "@a:hs", 1100, 4000));
    assert.equal(await s.media.getPending("p3"), null);
    assert.equal(await s.media.firstPendingExpiry("@a:hs", 1200), 4000);
    assert.equal(await s.media.firstPendingExpiry("@nobody:hs", 1200), null);
    // p2 expired at 4000: at 4500 there is a place again, and the expired row is gone.
    assert.equal(await s.media.createPending(p("p4", "@a:hs", 4500, 9000), 2, 4500), true);
    assert.equal(await s.media.getPending("p2"), null);
    const row = {
      mediaId: "p1",
      uploader: "@a:hs",
      contentType: "image/png",
      filename: null,
      size: 3,
      sha256: "ab",
      createdTs: 4600,
      quarantinedBy: null,
    };
    await s.media.completePending(row);
    assert.deepEqual(await s.media.getMedia("p1"), row);
    assert.equal(await s.media.getPending("p1"), null);
    await rejectsWith(s.media.completePending(row), "M_CANNOT_OVERWRITE_MEDIA");
    assert.equal(await s.media.firstPendingExpiry("@a:hs", 4600), 9000);
  });
}

export function urlPreviewTests(make: MakeStore): void {
  storeTest(make, "media: URL previews — shared cache, expiry, replace, purge on write", async (s) => {
    const row = (url: string, downloadTs: number, og: object = { "og:title": url }, mediaId: string | null = null) => ({
      url,
      og: JSON.stringify(og),
      mediaId,
      downloadTs,
      expiresTs: downloadTs + 3600_000,
    });
    const image = (mediaId: string) => ({
      mediaId,
      uploader: "@preview:hs",
      contentType: "image/png",
      filename: null,
      size: 10,
      sha256: "aa",
      createdTs: 1,
      quarantinedBy: null,
    });
    await s.media.putMedia(image("m1"));
    const a = row("https://a.example/page?q=1", 1_000, { "og:title": "Café \u{1F600}", "og:image:width": 64 }, "m1");
    await s.media.putUrlPreview(a, 1_000);
    assert.deepEqual(await s.media.getUrlPreview(a.url, 1_000), a);
    assert.deepEqual(JSON.parse((await s.media.getUrlPreview(a.url, 3_600_999))!.og), {
      "og:title": "Café \u{1F600}",
      "og:image:width": 64,
    });
    assert.equal(await s.media.getUrlPreview(a.url, 3_601_000), null, "expired at expiresTs");
    assert.equal(await s.media.getUrlPreview("https://a.example/page?q=2", 1_000), null);
    assert.equal(await s.media.getUrlPreview("https://A.example/page?q=1", 1_000), null, "the exact URL only");
    // A URL longer than a PostgreSQL index entry may be.
    const long = row(`https://b.example/${"x".repeat(10_000)}`, 2_000);
    await s.media.putUrlPreview(long, 2_000);
    assert.deepEqual(await s.media.getUrlPreview(long.url, 2_000), long);
    // A later fetch (another worker's, or after expiry) replaces the row.
    const a2 = row(a.url, 5_000, { "og:title": "new" });
    await s.media.putUrlPreview(a2, 5_000);
    assert.deepEqual(await s.media.getUrlPreview(a.url, 3_601_500), a2);
    // A write purges what expired: a (replaced, expires 3_605_000) stays; long (expired at 3_602_000) goes.
    await s.media.putUrlPreview(row("https://c.example/", 3_603_000), 3_603_000);
    assert.equal(await s.media.getUrlPreview(long.url, 0), null, "the expired row was deleted");
    assert.deepEqual(await s.media.getUrlPreview(a.url, 0), a2);
    assert.ok(await s.media.getUrlPreview("https://c.example/", 3_603_000));
    // A preview whose image an admin quarantined or deleted since is a miss (the next fetch stores a new image).
    await s.media.putMedia(image("m2"));
    await s.media.putMedia(image("m3"));
    const q = row("https://q.example/", 4_000_000, {}, "m2");
    const d = row("https://d.example/", 4_000_000, {}, "m3");
    await s.media.putUrlPreview(q, 4_000_000);
    await s.media.putUrlPreview(d, 4_000_000);
    assert.deepEqual(await s.media.getUrlPreview(q.url, 4_000_000), q);
    assert.deepEqual(await s.media.getUrlPreview(d.url, 4_000_000), d);
    await s.media.setQuarantined(["m2"], "@admin:hs");
    await s.media.deleteMedia("m3");
    assert.equal(await s.media.getUrlPreview(q.url, 4_000_000), null, "its image is quarantined");
    assert.equal(await s.media.getUrlPreview(d.url, 4_000_000), null, "its image is deleted");
    await s.media.setQuarantined(["m2"], null);
    assert.deepEqual(await s.media.getUrlPreview(q.url, 4_000_000), q, "released from quarantine");
  });
}
