/**
 * URL previews on a scaled-out homeserver (docs/ARCHITECTURE.md "Homeserver scale-out", "Shared beyond events"): two
 * worker processes (matrix.workers = 2) on one real PostgreSQL database and the real Redis, previews on and
 * loopback allow-listed, against a local web server that counts its requests.
 * - A page previewed through A, then through B: the page and its og:image are fetched once; B answers A's preview
 *   (the same mxc:// image) from the store's cache.
 * - Worker A restarted: its preview of the page still comes from the store (no fetch).
 * - Three requests at once for an uncached page on one worker share one fetch.
 * - A failure is not cached: the page answering 500 once, then 200, is fetched again and previewed by the other
 *   worker.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { api, registerUser, type Session } from "./helpers/client.ts";
import { ChildHomeserver } from "./helpers/homeserver.ts";

/** A server name of its own: the Redis channel is per server name, and other runs share this Redis. */
const NAME = `cp${randomBytes(4).toString("hex")}.test`;
const V1 = "/_matrix/client/v1/media/preview_url";

describe("scale-out: URL previews cached in the store, shared by 2 workers", () => {
  let a: ChildHomeserver;
  let b: ChildHomeserver;
  let s: Session;
  let site: Server;
  let base = "";
  const hits = new Map<string, number>();
  let flakyFailures = 1;

  before(async () => {
    const image = await sharp({ create: { width: 32, height: 24, channels: 3, background: "#cc6633" } })
      .png()
      .toBuffer();
    site = createServer((req, res) => {
      const path = (req.url ?? "/").split("?")[0];
      hits.set(path, (hits.get(path) ?? 0) + 1);
      const html = (body: string) => {
        res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
        res.end(body);
      };
      if (path === "/page")
        return html(`<html><head><meta property="og:title" content="Shared">
          <meta property="og:image" content="/img.png"></head></html>`);
      if (path === "/img.png") {
        res.writeHead(200, { "Content-Type": "image/png" });
        return res.end(image);
      }
      // Answers after 300 ms, so requests arriving together overlap the fetch.
      if (path === "/slow") return void setTimeout(() => html(`<html><head><title>Slow</title></head></html>`), 300);
      if (path === "/flaky") {
        if (flakyFailures-- > 0) return void res.writeHead(500).end();
        return html(`<html><head><title>Flaky</title></head></html>`);
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => site.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;
    a = await ChildHomeserver.start({
      backend: "postgres",
      matrix: {
        serverName: NAME,
        workers: 2,
        media: { urlPreview: { enabled: true, ipRangeAllowlist: ["127.0.0.1/32"], timeoutMs: 5000 } },
      },
    });
    b = await ChildHomeserver.start({ sharedWith: a });
    s = await registerUser(a.url, "cp_previewer");
  });
  after(async () => {
    const errors = [a, b].flatMap((w) => w?.errorLines() ?? []);
    await b?.dispose();
    await a?.dispose();
    site?.closeAllConnections();
    site?.close();
    assert.deepEqual(errors, [], "no internal errors on either worker");
  });

  const preview = (w: ChildHomeserver, path: string) =>
    api(w.url, "GET", `${V1}?url=${encodeURIComponent(base + path)}`, { token: s.accessToken });

  it("a page previewed through A, then through B and through A restarted: fetched once", async () => {
    const first = await preview(a, "/page");
    assert.equal(first.status, 200, first.text);
    assert.equal(first.json["og:title"], "Shared");
    assert.match(first.json["og:image"], new RegExp(`^mxc://${NAME.replace(/\./g, "\\.")}/`));
    assert.equal(hits.get("/page"), 1);
    assert.equal(hits.get("/img.png"), 1);
    const fromB = await preview(b, "/page");
    assert.equal(fromB.status, 200, fromB.text);
    assert.deepEqual(fromB.json, first.json, "B answers A's preview, the same mxc:// image");
    const dl = await api(b.url, "GET", `/_matrix/client/v1/media/download/${first.json["og:image"].slice(6)}`, {
      token: s.accessToken,
    });
    assert.equal(dl.status, 200, "the image is served by B too");
    await a.restart();
    const afterRestart = await preview(a, "/page");
    assert.deepEqual(afterRestart.json, first.json);
    assert.equal(hits.get("/page"), 1, "one fetch of the page for three previews on two workers and a restart");
    assert.equal(hits.get("/img.png"), 1);
  });

  it("requests at once for one uncached page on one worker share one fetch, and the other worker reuses it", async () => {
    const rs = await Promise.all([preview(b, "/slow"), preview(b, "/slow"), preview(b, "/slow")]);
    for (const r of rs) assert.deepEqual(r.json, { "og:title": "Slow" });
    assert.equal(hits.get("/slow"), 1);
    assert.deepEqual((await preview(a, "/slow")).json, { "og:title": "Slow" });
    assert.equal(hits.get("/slow"), 1);
  });

  it("a failure is not cached", async () => {
    const failed = await preview(a, "/flaky");
    assert.equal(failed.status, 502, failed.text);
    const r = await preview(b, "/flaky");
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { "og:title": "Flaky" });
    assert.equal(hits.get("/flaky"), 2);
    assert.deepEqual((await preview(a, "/flaky")).json, { "og:title": "Flaky" });
    assert.equal(hits.get("/flaky"), 2);
  });
});
