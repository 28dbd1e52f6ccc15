import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { gunzipSync } from "node:zlib";
import { configSchema } from "../config.ts";
import { silentLogger } from "../core/logger.ts";
import { type RunningWebServer, startWebServer } from "./server.ts";
import { homeserverUrlFor, webService } from "./service.ts";

const root = mkdtempSync(join(tmpdir(), "ami-web-"));
let web: RunningWebServer;
const bigJs = `console.log(${JSON.stringify("x".repeat(5000))});\n`;

before(async () => {
  mkdirSync(join(root, "assets"));
  writeFileSync(join(root, "index.html"), "<!doctype html><title>t</title>");
  writeFileSync(join(root, "assets", "index-abc123.js"), bigJs);
  writeFileSync(join(root, "assets", "crypto-1.wasm"), Buffer.from([0, 97, 115, 109, 1, 0, 0, 0]));
  writeFileSync(join(root, "..", "ami-web-secret.txt"), "TOP-SECRET-CONTENT");
  web = await startWebServer({
    host: "127.0.0.1",
    port: 0,
    root,
    homeserverUrl: () => "http://127.0.0.1:8008",
    serverName: "example.test",
    log: silentLogger,
  });
});
after(async () => {
  await web.close();
  rmSync(root, { recursive: true, force: true });
  rmSync(join(root, "..", "ami-web-secret.txt"), { force: true });
});

/** A raw request (fetch would decompress and hide Content-Encoding). */
function get(path: string, headers: Record<string, string> = {}, method = "GET") {
  return new Promise<{ status: number; headers: Record<string, any>; body: Buffer }>((resolve, reject) => {
    const u = new URL(web.url);
    const req = request({ host: u.hostname, port: u.port, path, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end();
  });
}

test("index.html: HTML type, revalidated (no-cache), CSP allowing WASM and blob: images", async () => {
  const r = await get("/");
  assert.equal(r.status, 200);
  assert.equal(r.headers["content-type"], "text/html; charset=utf-8");
  assert.equal(r.headers["cache-control"], "no-cache");
  assert.match(r.headers["content-security-policy"], /'wasm-unsafe-eval'/);
  assert.match(r.headers["content-security-policy"], /img-src 'self' blob:/);
  assert.equal(r.headers["x-content-type-options"], "nosniff");
  assert.equal(r.body.toString(), "<!doctype html><title>t</title>");
});

test("hashed assets are cached for a year; JS is gzipped when asked; WASM has its type for instantiateStreaming", async () => {
  const js = await get("/assets/index-abc123.js", { "accept-encoding": "gzip, br" });
  assert.equal(js.status, 200);
  assert.equal(js.headers["content-type"], "text/javascript; charset=utf-8");
  assert.equal(js.headers["cache-control"], "public, max-age=31536000, immutable");
  assert.equal(js.headers["content-encoding"], "gzip");
  assert.equal(js.headers.vary, "Accept-Encoding");
  assert.equal(gunzipSync(js.body).toString(), bigJs);
  const plain = await get("/assets/index-abc123.js");
  assert.equal(plain.headers["content-encoding"], undefined);
  assert.equal(plain.body.toString(), bigJs);
  const wasm = await get("/assets/crypto-1.wasm");
  assert.equal(wasm.headers["content-type"], "application/wasm");
  assert.deepEqual([...wasm.body], [0, 97, 115, 109, 1, 0, 0, 0]);
});

test("ETag revalidation answers 304 without a body; HEAD has headers only", async () => {
  const first = await get("/index.html");
  const etag = first.headers.etag;
  assert.ok(etag);
  const again = await get("/index.html", { "if-none-match": etag });
  assert.equal(again.status, 304);
  assert.equal(again.body.length, 0);
  const head = await get("/index.html", {}, "HEAD");
  assert.equal(head.status, 200);
  assert.equal(head.headers["content-length"], String(first.body.length));
  assert.equal(head.body.length, 0);
});

test("no file outside the root, no directory listings, 404 and 405 as JSON", async () => {
  for (const p of ["/../ami-web-secret.txt", "/%2e%2e/ami-web-secret.txt", "/assets/..%2f..%2fami-web-secret.txt"]) {
    const r = await get(p);
    assert.equal(r.status, 404, p);
    assert.doesNotMatch(r.body.toString(), /TOP-SECRET-CONTENT/);
  }
  assert.equal((await get("/%E0%A4%A")).status, 404);
  assert.equal((await get("/assets")).status, 404);
  const post = await get("/index.html", {}, "POST");
  assert.equal(post.status, 405);
  assert.equal(post.headers.allow, "GET, HEAD");
});

test("/config.json names the homeserver; /health, /_ami/stats and /metrics answer like every service", async () => {
  const c = await get("/config.json");
  assert.equal(c.headers["cache-control"], "no-store");
  assert.deepEqual(JSON.parse(c.body.toString()), {
    homeserverUrl: "http://127.0.0.1:8008",
    serverName: "example.test",
  });
  assert.deepEqual(JSON.parse((await get("/health")).body.toString()), { ok: true });
  const stats = JSON.parse((await get("/_ami/stats")).body.toString());
  assert.ok(stats.requests_total > 0);
  assert.equal(typeof stats.requests_per_sec, "number");
  const m = (await get("/metrics")).body.toString();
  assert.match(m, /^ami_web_requests_total\{status="200"\} \d+$/m);
  assert.match(m, /^ami_web_requests_total\{status="404"\} \d+$/m);
});

test("homeserver URL: publicBaseUrl, else matrix host:port, else (wildcard listen) the page's host name", () => {
  const cfg = (matrix: Record<string, unknown>) => configSchema.parse({ matrix });
  assert.equal(homeserverUrlFor(cfg({})), "http://127.0.0.1:8008");
  assert.equal(homeserverUrlFor(cfg({ publicBaseUrl: "https://m.example.org/" })), "https://m.example.org");
  assert.equal(homeserverUrlFor(cfg({ host: "::1", port: 9000 })), "http://[::1]:9000");
  const req = { headers: { host: "chat.lan:8080" } } as any;
  assert.equal(homeserverUrlFor(cfg({ host: "0.0.0.0" }), req), "http://chat.lan:8008");
});

test("the web service runs only when there is a homeserver to talk to", () => {
  assert.equal(webService.enabled(configSchema.parse({})), true);
  assert.equal(webService.enabled(configSchema.parse({ matrix: { enabled: false } })), false);
  assert.equal(
    webService.enabled(configSchema.parse({ matrix: { enabled: false, publicBaseUrl: "https://m.example.org" } })),
    true,
  );
  assert.equal(webService.enabled(configSchema.parse({ web: { enabled: false } })), false);
  assert.equal(webService.baseUrl(configSchema.parse({})), "http://127.0.0.1:8080");
});
