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
  });
}
