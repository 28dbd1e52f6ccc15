/**
 * URL previews (spec "URL previews", GET /_matrix/client/v1/media/preview_url and the deprecated
 * /_matrix/media/v3/preview_url) against a real local web server: OpenGraph and <title> fallbacks, og:image fetched
 * into the media store as an mxc:// URI, the hour's cache, a huge page cut at maxBytes, a slow page timed out, and
 * the network fence: off by default (404), and when on, loopback, private, link-local, CGNAT and IPv6 loopback
 * addresses — as literals, as a name resolving to them, or as a redirect's target — are refused unless allow-listed.
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import { assertSpec } from "../../src/test/spec-schema.ts";
import { BACKENDS } from "./helpers/homeserver.ts";
import { type Kit, startKit } from "./matrix-accounts-kit.ts";

const V1 = "/_matrix/client/v1/media/preview_url";
const V3 = "/_matrix/media/v3/preview_url";
const MAX_BYTES = 64 * 1024;

interface Site {
  server: Server;
  base: string;
  hits: Map<string, number>;
  /** Bytes the huge page got to write before the reader hung up. */
  hugeWritten: number;
}

async function startSite(image: Buffer): Promise<Site> {
  const site: Site = { server: createServer(), base: "", hits: new Map(), hugeWritten: 0 };
  site.server.on("request", (req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    site.hits.set(path, (site.hits.get(path) ?? 0) + 1);
    const html = (body: string) => {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
      res.end(body);
    };
    if (path === "/page")
      return html(`<!doctype html><html><head><title>Ignored title</title>
        <meta property="og:title" content="Caf&eacute; &amp; &quot;Bar&quot;">
        <meta content="A page about things" property='og:description'>
        <meta property="og:image" content="/img.png"><meta property="og:type" content="website">
        <!-- <meta property="og:title" content="commented out"> -->
        </head><body>hello</body></html>`);
    if (path === "/plain")
      return html(`<html><head><title>
        Plain   page </title><meta name="description" content="Described here"></head></html>`);
    if (path === "/img.png") {
      res.writeHead(200, { "Content-Type": "image/png" });
      return res.end(image);
    }
    if (path === "/photo.png") {
      res.writeHead(200, { "Content-Type": "image/png" });
      return res.end(image);
    }
    if (path === "/redirect") {
      res.writeHead(302, { Location: "/plain" });
      return res.end();
    }
    if (path === "/redirect-private") {
      res.writeHead(302, { Location: "http://10.255.255.1/secret" });
      return res.end();
    }
    if (path === "/huge") {
      res.writeHead(200, { "Content-Type": "text/html" });
      res.write(`<html><head><meta property="og:title" content="Huge">`);
      const filler = Buffer.alloc(64 * 1024, " ");
      const pump = () => {
        while (site.hugeWritten < 20 * 1024 * 1024) {
          site.hugeWritten += filler.length;
          if (!res.write(filler)) return void res.once("drain", pump);
        }
        res.end(`<meta property="og:description" content="beyond the cap"></head></html>`);
      };
      res.on("error", () => {});
      return pump();
    }
    if (path === "/slow") {
      res.writeHead(200, { "Content-Type": "text/html" });
      res.write("<html><head>");
      return; // never ends
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => site.server.listen(0, "127.0.0.1", r));
  site.base = `http://127.0.0.1:${(site.server.address() as AddressInfo).port}`;
  return site;
}

describe("URL previews", () => {
  let site: Site;
  let image: Buffer;
  before(async () => {
    image = await sharp({ create: { width: 64, height: 48, channels: 3, background: "#3366cc" } })
      .png()
      .toBuffer();
    site = await startSite(image);
  });
  after(() => {
    site.server.closeAllConnections();
    site.server.close();
  });

  for (const backend of BACKENDS) {
    describe(`allow-listed loopback on ${backend}`, () => {
      let k: Kit;
      let token: string;
      before(async () => {
        k = await startKit(backend, {
          media: {
            urlPreview: { enabled: true, ipRangeAllowlist: ["127.0.0.1/32"], maxBytes: MAX_BYTES, timeoutMs: 1500 },
          },
        });
        token = (await k.register("previewer")).token;
      });
      after(async () => {
        await k.dispose();
        assert.deepEqual(k.errors, [], "no internal errors");
      });
      const preview = (url: string, path = V1) =>
        k.call("GET", `${path}?url=${encodeURIComponent(url)}&ts=${Date.now()}`, undefined, token);

      test("OpenGraph data, the og:image as mxc:// with its size, cached for the next asker", async () => {
        const r = await preview(`${site.base}/page`);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        assertSpec("authed-content-repo.yaml", "/media/preview_url", "GET", 200, r.body);
        const { "og:image": mxc, ...rest } = r.body;
        assert.deepEqual(rest, {
          "og:title": 'Café & "Bar"',
          "og:description": "A page about things",
          "og:type": "website",
          "og:image:type": "image/png",
          "og:image:width": 64,
          "og:image:height": 48,
          "matrix:image:size": image.length,
        });
        const id = /^mxc:\/\/localhost\/([A-Za-z0-9_-]+)$/.exec(mxc)?.[1];
        assert.ok(id, mxc);
        const dl = await k.call("GET", `/_matrix/client/v1/media/download/localhost/${id}`, undefined, token);
        assert.ok(Buffer.from(dl.body).equals(image), "the image is in the media store");
        const hits = site.hits.get("/page");
        const again = await preview(`${site.base}/page`, V3);
        assertSpec("content-repo.yaml", "/media/v3/preview_url", "GET", 200, again.body);
        assert.deepEqual(again.body, r.body);
        assert.equal(site.hits.get("/page"), hits, "the second preview came from the cache");
      });

      test("<title> and description fallbacks, through a redirect; a link to an image previews the image", async () => {
        const r = await preview(`${site.base}/redirect`);
        assert.deepEqual(r.body, { "og:title": "Plain page", "og:description": "Described here" });
        const img = await preview(`${site.base}/photo.png`);
        assert.equal(img.body["og:image:width"], 64);
        assert.match(img.body["og:image"], /^mxc:\/\/localhost\//);
      });

      test("a huge page is cut at maxBytes, a slow page times out, a private redirect is refused", async () => {
        const huge = await preview(`${site.base}/huge`);
        assert.equal(huge.status, 200);
        assert.deepEqual(huge.body, { "og:title": "Huge" });
        assert.ok(site.hugeWritten < 20 * 1024 * 1024, `stopped reading (${site.hugeWritten} bytes written)`);
        const slow = await preview(`${site.base}/slow`);
        assert.deepEqual([slow.status, slow.body.errcode], [504, "M_UNKNOWN"], JSON.stringify(slow.body));
        const redirected = await preview(`${site.base}/redirect-private`);
        assert.deepEqual([redirected.status, redirected.body.errcode], [403, "M_FORBIDDEN"]);
        // Still only 127.0.0.1 is allowed: its IPv6 twin and other loopback addresses are not.
        for (const url of [`http://[::1]:1/`, "http://127.0.0.2:1/"]) {
          const r = await preview(url);
          assert.deepEqual([r.status, r.body.errcode], [403, "M_FORBIDDEN"], url);
        }
      });
    });
  }

  describe("default fence (sqlite)", () => {
    let on: Kit;
    let off: Kit;
    let tokenOn: string;
    let tokenOff: string;
    before(async () => {
      on = await startKit("sqlite", { media: { urlPreview: { enabled: true } } });
      off = await startKit("sqlite");
      tokenOn = (await on.register("p1")).token;
      tokenOff = (await off.register("p2")).token;
    });
    after(async () => {
      await on.dispose();
      await off.dispose();
      assert.deepEqual([...on.errors, ...off.errors], [], "no internal errors");
    });

    test("off by default: the route answers 403 M_FORBIDDEN", async () => {
      for (const path of [V1, V3]) {
        const r = await off.call("GET", `${path}?url=${encodeURIComponent(`${site.base}/page`)}`, undefined, tokenOff);
        assert.deepEqual([r.status, r.body.errcode], [403, "M_FORBIDDEN"], path);
      }
    });

    test("loopback, private, link-local, CGNAT, IPv6 and names resolving to them are refused; bad URLs are 400", async () => {
      const port = new URL(site.base).port;
      const before = site.hits.get("/page") ?? 0;
      for (const url of [
        `${site.base}/page`,
        `http://localhost:${port}/page`,
        `http://[::1]:${port}/page`,
        `http://[::ffff:127.0.0.1]:${port}/page`,
        "http://10.1.2.3/",
        "http://192.168.1.1/",
        "http://172.16.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "https://2130706433/",
      ]) {
        const r = await on.call("GET", `${V1}?url=${encodeURIComponent(url)}`, undefined, tokenOn);
        assert.deepEqual([r.status, r.body.errcode], [403, "M_FORBIDDEN"], `${url}: ${JSON.stringify(r.body)}`);
      }
      assert.equal(site.hits.get("/page") ?? 0, before, "the local site was never reached");
      for (const q of [
        "",
        "?url=",
        "?url=ftp%3A%2F%2Fexample.org%2F",
        "?url=not%20a%20url",
        "?url=http%3A%2F%2Fu%3Ap%40example.org%2F",
      ]) {
        const r = await on.call("GET", `${V1}${q}`, undefined, tokenOn);
        assert.equal(r.status, 400, `${q}: ${JSON.stringify(r.body)}`);
        assert.match(r.body.errcode, /^M_(MISSING|INVALID)_PARAM$/);
      }
      const unauth = await on.call("GET", `${V1}?url=${encodeURIComponent(`${site.base}/page`)}`);
      assert.equal(unauth.status, 401);
    });
  });
});
