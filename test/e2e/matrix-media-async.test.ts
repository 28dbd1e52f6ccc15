/**
 * Asynchronous uploads (spec "Content repository", v1.7): POST /_matrix/media/v1/create hands out an mxc:// URI,
 * PUT /_matrix/media/v3/upload/{serverName}/{mediaId} gives it bytes — only by its creator, only once, only before it
 * expires — a download of it meanwhile waits up to `timeout_ms` (woken by the upload) or answers 504
 * M_NOT_YET_UPLOADED, and a user may have at most maxPendingUploads IDs waiting (429 M_LIMIT_EXCEEDED). Also the
 * daily upload quota (matrix.media.maxUploadBytesPerUserPerDay), which both upload routes keep.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { assertSpec } from "../../src/test/spec-schema.ts";
import { BACKENDS } from "./helpers/homeserver.ts";
import { type Kit, startKit } from "./matrix-accounts-kit.ts";

const CREATE = "/media/v1/create";
const PUT = "/media/v3/upload/{serverName}/{mediaId}";
const DOWNLOAD = "/media/download/{serverName}/{mediaId}";
const idOf = (uri: string) => uri.split("/").pop()!;

for (const backend of BACKENDS) {
  describe(`async uploads on ${backend}`, () => {
    let k: Kit;
    before(async () => {
      k = await startKit(backend, { media: { maxPendingUploads: 3 } });
    });
    after(async () => {
      await k.dispose();
      assert.deepEqual(k.errors, [], "no internal errors");
    });

    const user = async () => (await k.register(`u${randomBytes(4).toString("hex")}`)).token;
    const create = (t: string) => k.call("POST", "/_matrix/media/v1/create", {}, t);
    const put = (id: string, body: Buffer, t: string, type = "application/x-thing", server = "localhost") =>
      k.call("PUT", `/_matrix/media/v3/upload/${server}/${id}?filename=late.bin`, body, t, { "Content-Type": type });
    const download = (id: string, t: string, timeout?: number) =>
      k.call(
        "GET",
        `/_matrix/client/v1/media/download/localhost/${id}${timeout === undefined ? "" : `?timeout_ms=${timeout}`}`,
        undefined,
        t,
      );

    test("create, a waiting download woken by the upload, then the upload is final", async () => {
      const t = await user();
      const before = Date.now();
      const c = await create(t);
      assert.equal(c.status, 200, JSON.stringify(c.body));
      assertSpec("content-repo.yaml", CREATE, "POST", 200, c.body);
      assert.match(c.body.content_uri, /^mxc:\/\/localhost\/[A-Za-z0-9_-]+$/);
      assert.ok(c.body.unused_expires_at >= before + 86_400_000 && c.body.unused_expires_at <= Date.now() + 86_400_000);
      const id = idOf(c.body.content_uri);

      const early = await download(id, t, 0);
      assert.deepEqual([early.status, early.body.errcode], [504, "M_NOT_YET_UPLOADED"]);
      assertSpec("authed-content-repo.yaml", DOWNLOAD, "GET", 504, early.body);
      const thumb = await k.call(
        "GET",
        `/_matrix/client/v1/media/thumbnail/localhost/${id}?width=32&height=32&timeout_ms=0`,
        undefined,
        t,
      );
      assert.deepEqual([thumb.status, thumb.body.errcode], [504, "M_NOT_YET_UPLOADED"]);

      // A download that waits: still pending while nothing is uploaded, answered once the bytes land.
      let settled = false;
      const waiting = download(id, t, 30_000).finally(() => {
        settled = true;
      });
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(settled, false, "the download waits for the upload");
      const bytes = randomBytes(70_000);
      const up = await put(id, bytes, t);
      assert.equal(up.status, 200, JSON.stringify(up.body));
      assertSpec("content-repo.yaml", PUT, "PUT", 200, up.body);
      const got = await waiting;
      assert.equal(got.status, 200);
      assert.ok(Buffer.from(got.body).equals(bytes));
      assert.equal(got.headers.get("content-type"), "application/x-thing");
      assert.equal(got.headers.get("content-disposition"), "attachment; filename*=UTF-8''late.bin");

      const again = await put(id, randomBytes(10), t);
      assert.deepEqual([again.status, again.body.errcode], [409, "M_CANNOT_OVERWRITE_MEDIA"]);
      assertSpec("content-repo.yaml", PUT, "PUT", 409, again.body);
      assert.ok(Buffer.from((await download(id, t)).body).equals(bytes), "the first upload stays");
    });

    test("only the creator uploads; unknown, foreign-server and expired IDs are 404", async () => {
      const [alice, bob] = [await user(), await user()];
      const id = idOf((await create(alice)).body.content_uri);
      const foreign = await put(id, Buffer.from("x"), bob);
      assert.deepEqual([foreign.status, foreign.body.errcode], [403, "M_FORBIDDEN"]);
      assertSpec("content-repo.yaml", PUT, "PUT", 403, foreign.body);
      for (const [mid, server] of [
        ["NoSuchMediaId", "localhost"],
        [id, "elsewhere.example"],
        ["bad%20id", "localhost"],
      ]) {
        const r = await put(mid, Buffer.from("x"), alice, "text/plain", server);
        assert.deepEqual([r.status, r.body.errcode], [404, "M_NOT_FOUND"], `${server}/${mid}`);
        assertSpec("content-repo.yaml", PUT, "PUT", 404, r.body);
      }
      // An ID whose time ran out (written as the store would hold it a day later).
      const now = Date.now();
      const userId = (await k.call("GET", "/_matrix/client/v3/account/whoami", undefined, alice)).body.user_id;
      await k.hs.store.media.createPending(
        { mediaId: "expiredId1", userId, createdTs: now - 90_000_000, expiresTs: now - 1000 },
        100,
        now - 2000,
      );
      const late = await put("expiredId1", Buffer.from("x"), alice);
      assert.deepEqual([late.status, late.body.errcode], [404, "M_NOT_FOUND"]);
      const dl = await download("expiredId1", alice, 10_000);
      assert.deepEqual([dl.status, dl.body.errcode], [404, "M_NOT_FOUND"], "an expired ID is not waited for");
      // Bob's failed attempt changed nothing: Alice can still upload.
      assert.equal((await put(id, Buffer.from("mine"), alice)).status, 200);
    });

    test("at most maxPendingUploads IDs wait per user; an upload frees a place", async () => {
      const [t, other] = [await user(), await user()];
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const c = await create(t);
        assert.equal(c.status, 200);
        ids.push(idOf(c.body.content_uri));
      }
      const over = await create(t);
      assert.deepEqual([over.status, over.body.errcode], [429, "M_LIMIT_EXCEEDED"]);
      assertSpec("content-repo.yaml", CREATE, "POST", 429, over.body);
      assert.ok(over.body.retry_after_ms > 0);
      assert.equal((await create(other)).status, 200, "the limit is per user");
      assert.equal((await put(ids[0], Buffer.from("done"), t)).status, 200);
      assert.equal((await create(t)).status, 200, "an uploaded ID no longer counts");
      const unauth = await k.call("POST", "/_matrix/media/v1/create", {});
      assert.equal(unauth.status, 401);
    });
  });

  describe(`daily upload quota on ${backend}`, () => {
    let k: Kit;
    before(async () => {
      k = await startKit(backend, { media: { maxUploadBytesPerUserPerDay: 100_000 } });
    });
    after(async () => {
      await k.dispose();
      assert.deepEqual(k.errors, [], "no internal errors");
    });

    test("uploads past the user's bytes of the day are refused 403 M_FORBIDDEN, on both upload routes", async () => {
      const [t, other] = [(await k.register("quota1")).token, (await k.register("quota2")).token];
      const post = (body: Buffer, tok = t) =>
        k.call("POST", "/_matrix/media/v3/upload", body, tok, { "Content-Type": "application/octet-stream" });
      assert.equal((await post(randomBytes(60_000))).status, 200);
      const over = await post(randomBytes(50_000));
      assert.deepEqual([over.status, over.body.errcode], [403, "M_FORBIDDEN"]);
      assertSpec("content-repo.yaml", "/media/v3/upload", "POST", 403, over.body);
      const id = idOf((await k.call("POST", "/_matrix/media/v1/create", {}, t)).body.content_uri);
      const late = await k.call("PUT", `/_matrix/media/v3/upload/localhost/${id}`, randomBytes(50_000), t, {
        "Content-Type": "application/octet-stream",
      });
      assert.deepEqual([late.status, late.body.errcode], [403, "M_FORBIDDEN"]);
      assertSpec("content-repo.yaml", PUT, "PUT", 403, late.body);
      assert.equal((await post(randomBytes(30_000))).status, 200, "what fits is still taken");
      assert.equal((await post(randomBytes(90_000), other)).status, 200, "the quota is per user");
    });
  });
}
