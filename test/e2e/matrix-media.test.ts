/** Media repository: upload/download byte-identical, type and filename kept, limits, authenticated vs legacy routes. */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { MEDIA_FREEZE_TS } from "../../src/matrix/client/media.ts";
import { assertSpec } from "../../src/test/spec-schema.ts";
import { BACKENDS } from "./helpers/homeserver.ts";
import { type Kit, startKit } from "./matrix-accounts-kit.ts";

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const MAX = 256 * 1024;

for (const backend of BACKENDS) {
  describe(`media on ${backend}`, () => {
    let k: Kit;
    let token: string;
    before(async () => {
      k = await startKit(backend, { media: { maxUploadBytes: MAX } });
      token = (await k.register("uploader")).token;
    });
    after(async () => {
      await k.dispose();
      assert.deepEqual(k.errors, [], "no internal errors");
    });

    const upload = (body: Buffer, type: string | undefined, filename?: string, t: string | null = token) =>
      k.call(
        "POST",
        `/_matrix/media/v3/upload${filename ? `?filename=${encodeURIComponent(filename)}` : ""}`,
        body,
        t ?? undefined,
        type ? { "Content-Type": type } : {},
      );

    test("upload then authenticated download is byte-identical, with type and filename", async () => {
      const bytes = randomBytes(200_000);
      const up = await upload(bytes, "application/x-thing", "data file ü.bin");
      assert.equal(up.status, 200, JSON.stringify(up.body));
      assertSpec("content-repo.yaml", "/media/v3/upload", "POST", 200, up.body);
      const m = /^mxc:\/\/localhost\/([A-Za-z0-9_-]+)$/.exec(up.body.content_uri);
      assert.ok(m, up.body.content_uri);
      const id = m[1];
      const dl = await k.call("GET", `/_matrix/client/v1/media/download/localhost/${id}`, undefined, token);
      assert.equal(dl.status, 200);
      assert.equal(sha(dl.body), sha(bytes));
      assert.equal(dl.headers.get("content-type"), "application/x-thing");
      assert.equal(dl.headers.get("content-disposition"), "attachment; filename*=UTF-8''data%20file%20%C3%BC.bin");
      const row = await k.hs.store.media.getMedia(id);
      assert.equal(row?.sha256, sha(bytes));
      assert.equal(row?.size, bytes.length);
      // A file name in the path overrides the stored one.
      const named = await k.call(
        "GET",
        `/_matrix/client/v1/media/download/localhost/${id}/other.bin`,
        undefined,
        token,
      );
      assert.equal(named.headers.get("content-disposition"), "attachment; filename*=UTF-8''other.bin");
      assert.equal(sha(named.body), sha(bytes));
      // Spec v1.11 media freeze: a new upload is not on the legacy unauthenticated routes.
      for (const path of [
        `/_matrix/media/v3/download/localhost/${id}`,
        `/_matrix/media/r0/download/localhost/${id}/x`,
      ]) {
        const legacy = await k.call("GET", path);
        assert.deepEqual([legacy.status, legacy.body.errcode], [404, "M_NOT_FOUND"], path);
      }
    });

    test("the same file uploaded by two users is stored once in the content-addressed store", async () => {
      const bytes = randomBytes(230_000); // several chunks at the store's default sizes
      const other = (await k.register(`second${randomBytes(3).toString("hex")}`)).token;
      const chunksBefore = (await k.hs.cas.list()).reduce((n, o) => n + o.chunks, 0);
      const a = await upload(bytes, "application/octet-stream", "a.bin");
      const b = await upload(bytes, "application/octet-stream", "b.bin", other);
      assert.equal(a.status, 200, JSON.stringify(a.body));
      assert.equal(b.status, 200, JSON.stringify(b.body));
      const [ida, idb] = [a.body.content_uri, b.body.content_uri].map((u: string) => u.split("/").pop()!);
      assert.notEqual(ida, idb, "two media ids");
      const objects = (await k.hs.cas.list()).filter((o) => o.sha256 === sha(bytes));
      assert.equal(objects.length, 1, "one object for both uploads");
      assert.deepEqual(objects[0].holds, [`matrix.media:${ida}`, `matrix.media:${idb}`].sort());
      assert.ok(objects[0].chunks >= 2, `${objects[0].chunks} chunk(s)`);
      const chunksAfter = (await k.hs.cas.list()).reduce((n, o) => n + o.chunks, 0);
      assert.equal(chunksAfter - chunksBefore, objects[0].chunks, "the chunks are counted once");
      // Nothing of the second upload was new: putting the bytes again stores nothing.
      const again = await k.hs.cas.put(bytes);
      assert.deepEqual([again.id, again.newChunks, again.newBytes], [objects[0].id, 0, 0]);
      for (const [id, t] of [
        [ida, token],
        [idb, other],
      ]) {
        const dl = await k.call("GET", `/_matrix/client/v1/media/download/localhost/${id}`, undefined, t);
        assert.equal(dl.status, 200);
        assert.ok(Buffer.from(dl.body).equals(bytes), `download of ${id} is byte-identical`);
      }
      // GC keeps held media.
      await k.hs.cas.gc();
      const dl = await k.call("GET", `/_matrix/client/v1/media/download/localhost/${idb}`, undefined, token);
      assert.equal(sha(dl.body), sha(bytes));
    });

    test("media from before the freeze is still served by the legacy unauthenticated routes", async () => {
      const bytes = Buffer.from("89504e470d0a1a0a0000000d4948445200000001000000010806000000", "hex");
      const id = `old${randomBytes(8).toString("hex")}`;
      mkdirSync(join(k.hs.mediaDir, id.slice(0, 2)), { recursive: true });
      writeFileSync(join(k.hs.mediaDir, id.slice(0, 2), id), bytes);
      await k.hs.store.media.putMedia({
        mediaId: id,
        uploader: "@uploader:localhost",
        contentType: "image/png",
        filename: "old.png",
        size: bytes.length,
        sha256: sha(bytes),
        createdTs: MEDIA_FREEZE_TS - 1,
      });
      for (const path of [
        `/_matrix/media/v3/download/localhost/${id}`,
        `/_matrix/media/r0/download/localhost/${id}/x.png`,
      ]) {
        const r = await k.call("GET", path);
        assert.equal(r.status, 200, path);
        assert.equal(sha(r.body), sha(bytes), path);
      }
    });

    test("safe types are inline; a broken image and non-images have no thumbnail (matrix-media-thumbnails.test.ts)", async () => {
      const png = Buffer.from("89504e470d0a1a0a0000000d4948445200000001000000010806000000", "hex");
      const up = await upload(png, "image/png", "dot.png");
      const id = up.body.content_uri.split("/").pop();
      const dl = await k.call("GET", `/_matrix/client/v1/media/download/localhost/${id}`, undefined, token);
      assert.equal(dl.headers.get("content-disposition"), "inline; filename*=UTF-8''dot.png");
      assert.match(dl.headers.get("content-security-policy") ?? "", /sandbox/);
      // A truncated PNG (its header cut short) cannot be thumbnailed: 400 M_UNKNOWN, as the spec's example.
      const th = await k.call(
        "GET",
        `/_matrix/client/v1/media/thumbnail/localhost/${id}?width=32&height=32&method=scale`,
        undefined,
        token,
      );
      assert.deepEqual([th.status, th.body.errcode], [400, "M_UNKNOWN"]);
      assert.equal((await k.call("GET", `/_matrix/media/v3/thumbnail/localhost/${id}?width=32&height=32`)).status, 404);
      assert.equal(
        (await k.call("GET", `/_matrix/client/v1/media/thumbnail/localhost/${id}?width=32`, undefined, token)).body
          .errcode,
        "M_MISSING_PARAM",
      );
      assert.equal(
        (await k.call("GET", `/_matrix/client/v1/media/thumbnail/localhost/${id}?width=a&height=1`, undefined, token))
          .body.errcode,
        "M_INVALID_PARAM",
      );
      const html = await upload(Buffer.from("<script>alert(1)</script>"), "text/html");
      const hid = html.body.content_uri.split("/").pop();
      const hd = await k.call("GET", `/_matrix/client/v1/media/download/localhost/${hid}`, undefined, token);
      assert.equal(hd.headers.get("content-disposition"), "attachment");
      assert.equal(
        (await k.call("GET", `/_matrix/client/v1/media/thumbnail/localhost/${hid}?width=1&height=1`, undefined, token))
          .status,
        400,
      );
      const noType = await upload(Buffer.from("x"), undefined);
      const nid = noType.body.content_uri.split("/").pop();
      assert.equal(
        (await k.call("GET", `/_matrix/client/v1/media/download/localhost/${nid}`, undefined, token)).headers.get(
          "content-type",
        ),
        "application/octet-stream",
      );
      const empty = await upload(Buffer.alloc(0), "text/plain");
      const eid = empty.body.content_uri.split("/").pop();
      const ed = await k.call("GET", `/_matrix/client/v1/media/download/localhost/${eid}`, undefined, token);
      assert.deepEqual([ed.status, ed.body.length], [200, 0]);
    });

    test("auth, limits, config and unknown media", async () => {
      const noAuth = await upload(Buffer.from("x"), "text/plain", undefined, null);
      assert.deepEqual([noAuth.status, noAuth.body.errcode], [401, "M_MISSING_TOKEN"]);
      const bad = await upload(Buffer.from("x"), "text/plain", undefined, "bogus");
      assert.deepEqual([bad.status, bad.body.errcode], [401, "M_UNKNOWN_TOKEN"]);
      const big = await upload(Buffer.alloc(MAX + 1), "application/octet-stream");
      assert.deepEqual([big.status, big.body.errcode], [413, "M_TOO_LARGE"]);
      const exact = await upload(Buffer.alloc(MAX, 7), "application/octet-stream");
      assert.equal(exact.status, 200);
      const up = await upload(Buffer.from("secret"), "text/plain");
      const id = up.body.content_uri.split("/").pop();
      const unauth = await k.call("GET", `/_matrix/client/v1/media/download/localhost/${id}`);
      assert.deepEqual([unauth.status, unauth.body.errcode], [401, "M_MISSING_TOKEN"]);
      for (const path of [
        "/_matrix/client/v1/media/download/localhost/doesnotexist",
        "/_matrix/client/v1/media/download/elsewhere.org/" + id,
        "/_matrix/client/v1/media/download/localhost/..%2F..%2Fetc",
      ]) {
        const r = await k.call("GET", path, undefined, token);
        assert.deepEqual([r.status, r.body.errcode], [404, "M_NOT_FOUND"], path);
      }
      const cfg = await k.call("GET", "/_matrix/client/v1/media/config", undefined, token);
      assertSpec("authed-content-repo.yaml", "/media/config", "GET", 200, cfg.body);
      assert.deepEqual(cfg.body, { "m.upload.size": MAX });
      assert.deepEqual((await k.call("GET", "/_matrix/media/v3/config", undefined, token)).body, {
        "m.upload.size": MAX,
      });
    });
  });
}
