import assert from "node:assert/strict";
import { createServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { CmafTimeline } from "../../protocols/fmp4/timeline.ts";
import { fastAnswer, rendered, sendRendered } from "./playlist-cache.ts";

const timeline = () => new CmafTimeline({ segmentSeconds: 1, partSeconds: 0.2, segmentCount: 3, endGraceMs: 60_000 });

test("a variant is rendered once per timeline version, each key on its own", () => {
  const t = timeline();
  let renders = 0;
  const render = (text: string) => () => {
    renders++;
    return text;
  };
  const a = rendered(t, "media", "application/vnd.apple.mpegurl", render("one"));
  const b = rendered(t, "media", "application/vnd.apple.mpegurl", render("two"));
  assert.equal(b, a, "same version: the cached rendering");
  assert.equal(b.body.toString(), "one");
  assert.equal(renders, 1);
  assert.equal(a.headers["content-length"], "3");
  assert.equal(a.headers["cache-control"], "no-cache");
  assert.equal(a.headers.etag, a.etag);
  const skip = rendered(t, "media-skip", "application/vnd.apple.mpegurl", render("delta"));
  assert.equal(skip.body.toString(), "delta");
  assert.notEqual(skip.etag, a.etag);
  t.end(); // the publisher left (end grace): a change playlists show
  const c = rendered(t, "media", "application/vnd.apple.mpegurl", render("three"));
  assert.equal(c.body.toString(), "three", "a new version renders again");
  assert.notEqual(c.etag, a.etag);
  assert.equal(renders, 3);
  t.restart(); // clears the grace timer
});

test("maxAgeMs re-renders a variant that shows its render time; keys per timeline are bounded", async () => {
  const t = timeline();
  let n = 0;
  const first = rendered(t, "mpd", "application/dash+xml", () => String(++n), 5);
  await new Promise((r) => setTimeout(r, 20));
  const second = rendered(t, "mpd", "application/dash+xml", () => String(++n), 5);
  assert.notEqual(second, first);
  assert.equal(second.body.toString(), "2");
  // Keys made from request data (the MPD's clock URL) cannot grow the cache: the oldest goes.
  const kept = rendered(t, "k0", "text/plain", () => "k0");
  for (let i = 1; i < 40; i++) rendered(t, `k${i}`, "text/plain", () => `k${i}`);
  assert.notEqual(
    rendered(t, "k0", "text/plain", () => "k0 again"),
    kept,
    "the oldest key was dropped and is rendered again",
  );
});

test("sendRendered: 200 with the precomputed headers, 304 for a matching If-None-Match, no body for HEAD", async () => {
  const t = timeline();
  const r = rendered(t, "media", "application/vnd.apple.mpegurl", () => "#EXTM3U\n");
  const server = createServer((req, res) => {
    sendRendered(req, res, r);
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const port = (server.address() as AddressInfo).port;
  const get = (method: string, headers: Record<string, string> = {}) =>
    new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port, method, path: "/x", headers }, (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (d: string) => {
          body += d;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on("error", reject);
      req.end();
    });
  try {
    const ok = await get("GET");
    assert.equal(ok.status, 200);
    assert.equal(ok.body, "#EXTM3U\n");
    assert.equal(ok.headers.etag, r.etag);
    assert.equal(ok.headers["content-type"], "application/vnd.apple.mpegurl");
    const same = await get("GET", { "if-none-match": `"other", ${r.etag}` });
    assert.equal(same.status, 304);
    assert.equal(same.body, "");
    const stale = await get("GET", { "if-none-match": '"other"' });
    assert.equal(stale.status, 200);
    const head = await get("HEAD");
    assert.equal(head.status, 200);
    assert.equal(head.body, "");
    assert.equal(head.headers["content-length"], String(r.body.length));
  } finally {
    server.close();
  }
});

test("fastAnswer: the rendering as complete bytes with the route's headers, 304 for a matching ETag, head only for HEAD", () => {
  const t = timeline();
  const r = rendered(t, "media", "application/vnd.apple.mpegurl", () => "#EXTM3U\n");
  const cors = [["Access-Control-Allow-Origin", "*"]] as const;
  const ok = fastAnswer("GET", undefined, r, cors).toString("latin1");
  assert.match(ok, /^HTTP\/1.1 200 OK\r\n/);
  for (const h of [
    "Access-Control-Allow-Origin: *",
    "Content-Type: application/vnd.apple.mpegurl",
    "Cache-Control: no-cache",
    `ETag: ${r.etag}`,
    "Content-Length: 8",
  ])
    assert.ok(ok.includes(`\r\n${h}\r\n`), h);
  assert.ok(ok.endsWith("\r\n\r\n#EXTM3U\n"));
  assert.equal(fastAnswer("HEAD", undefined, r, cors).toString("latin1"), ok.slice(0, -8));
  const nm = fastAnswer("GET", `"other", ${r.etag}`, r, cors).toString("latin1");
  assert.match(nm, /^HTTP\/1.1 304 Not Modified\r\n/);
  assert.ok(nm.endsWith("\r\n\r\n") && !nm.includes("Content-Length"));
  assert.match(fastAnswer("GET", '"other"', r, cors).toString("latin1"), /^HTTP\/1.1 200/);
});
