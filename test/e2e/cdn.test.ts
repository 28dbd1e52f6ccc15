/**
 * CDN edge nodes against a real node:http origin: two regional edges (a, b) behind a shield, all on the HTTP kit,
 * clients are node:http, raw sockets and curl. Hits, misses, 304 revalidation, Vary, ranges, purge by tag across
 * both edges and the shield through the `cdn.purge` op, stale-if-error with the origin down, 1,000 concurrent
 * misses → one origin request with every waiter streaming before the origin finishes, smuggling and header bombs
 * refused with the node staying up, an unkeyed header not reflected into the cached object, shield failover.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { cdnSchema } from "../../src/cdn/config.ts";
import { EdgeNode } from "../../src/cdn/node.ts";
import { writeNodes } from "../../src/cdn/nodes.ts";
import { cdnPurgeOp } from "../../src/cdn/ops.ts";
import { createLogger } from "../../src/core/logger.ts";
import type { OpContext } from "../../src/core/ops.ts";
import { runtimePaths } from "../../src/core/paths.ts";

const log = createLogger({ level: "error" });
const hits = new Map<string, number>();
const seen: http.IncomingHttpHeaders[] = [];
let version = "v1";
let down = false;
let release: () => void = () => {};
const released = new Promise<void>((r) => {
  release = r;
});

const origin = http.createServer((req, res) => {
  if (down) {
    req.socket.destroy();
    return;
  }
  const path = req.url ?? "/";
  hits.set(path.split("?")[0], (hits.get(path.split("?")[0]) ?? 0) + 1);
  seen.push(req.headers);
  if (path === "/health") return res.end("ok");
  if (path.startsWith("/tagged")) {
    res.writeHead(200, { "cache-control": "max-age=600", "surrogate-key": "news sport", "content-type": "text/plain" });
    return res.end(`${path} ${version}`);
  }
  if (path === "/reval") {
    const etag = `"${version}"`;
    if (req.headers["if-none-match"] === etag) {
      res.writeHead(304, { etag, "cache-control": "max-age=1" });
      return res.end();
    }
    res.writeHead(200, { etag, "cache-control": "max-age=1" });
    return res.end(`reval ${version}`);
  }
  if (path === "/vary") {
    res.writeHead(200, { vary: "Accept-Language", "cache-control": "max-age=600" });
    return res.end(`lang=${req.headers["accept-language"] ?? "none"}`);
  }
  if (path === "/big") {
    const body = Buffer.alloc(100_000);
    for (let i = 0; i < body.length; i++) body[i] = i % 251;
    res.writeHead(200, { "cache-control": "max-age=600", "content-length": body.length });
    return res.end(body);
  }
  if (path === "/huge") {
    const body = Buffer.alloc(300_000, "h");
    res.writeHead(200, { "cache-control": "max-age=600", "content-length": body.length });
    return res.end(body);
  }
  if (path === "/sie") {
    res.writeHead(200, { "cache-control": "max-age=1, stale-if-error=60" });
    return res.end(`sie ${version}`);
  }
  if (path === "/reflect") {
    res.writeHead(200, { "cache-control": "max-age=600" });
    return res.end(`host=${req.headers["x-forwarded-host"] ?? "-"}`);
  }
  if (path === "/slow") {
    res.writeHead(200, { "cache-control": "max-age=600", "content-type": "application/octet-stream" });
    res.write("first-part;");
    released.then(() => res.end("second-part"));
    return;
  }
  res.writeHead(404);
  res.end();
});

let originUrl = "";
let shield: EdgeNode;
let a: EdgeNode;
let b: EdgeNode;
const home = mkdtempSync(join(tmpdir(), "ami-cdn-e2e-"));

async function node(region: string, up: string, parents: string[] = []): Promise<EdgeNode> {
  const n = new EdgeNode({
    config: cdnSchema.parse({
      port: 0,
      region,
      parents,
      healthCheckMs: 200,
      upstreamTimeoutMs: 2000,
      maxConnectionsPerAddress: 5000,
    }),
    origin: up,
    log,
  });
  await n.start();
  return n;
}

interface Got {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function get(base: string, path: string, headers: Record<string, string> = {}): Promise<Got> {
  return new Promise((resolve, reject) => {
    http
      .get(`${base}${path}`, { headers: { host: "cdn.test", ...headers }, agent: false }, (res) => {
        const cs: Buffer[] = [];
        res.on("data", (c) => cs.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(cs) }));
      })
      .on("error", reject);
  });
}

function raw(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    let out = "";
    s.on("data", (d) => {
      out += d;
    });
    s.on("error", () => resolve(out));
    s.on("close", () => resolve(out));
    s.write(text);
    setTimeout(() => s.destroy(), 1500);
  });
}

const portOf = (n: EdgeNode) => Number(new URL(n.url).port);

before(async () => {
  await new Promise<void>((r) => origin.listen(0, "127.0.0.1", r));
  originUrl = `http://127.0.0.1:${(origin.address() as { port: number }).port}`;
  shield = await node("shield", originUrl);
  a = await node("eu-west-1", originUrl, [shield.url]);
  b = await node("us-east-1", originUrl, [shield.url]);
});

after(async () => {
  release();
  await Promise.all([a.close(), b.close(), shield.close()]);
  origin.closeAllConnections();
  await new Promise((r) => origin.close(r));
  rmSync(home, { recursive: true, force: true });
});

test("miss then hit (curl), through the shield: the origin sees one request", async () => {
  const curl = async () =>
    (await promisify(execFile)("curl", ["-s", "-D", "-", "-H", "Host: cdn.test", `${a.url}/tagged/1?utm_source=x`]))
      .stdout;
  const first = await curl();
  assert.match(first, /x-cache: MISS/i);
  assert.match(first, /\/tagged\/1 v1$/);
  const second = await curl();
  assert.match(second, /x-cache: HIT/i);
  assert.equal(hits.get("/tagged/1"), 1);
  // b misses locally but hits the shield.
  const viaB = await get(b.url, "/tagged/1");
  assert.equal(viaB.body.toString(), "/tagged/1 v1");
  assert.equal(hits.get("/tagged/1"), 1);
  assert.equal(shield.stats.hits, 1);
});

test("revalidation: an expired object is revalidated with If-None-Match (304), body kept", async () => {
  assert.equal((await get(a.url, "/reval")).body.toString(), "reval v1");
  await new Promise((r) => setTimeout(r, 2100));
  const before304 = seen.length;
  const r = await get(shield.url, "/reval");
  assert.equal(r.body.toString(), "reval v1");
  assert.equal(r.headers["x-cache"], "REVALIDATED");
  assert.ok(
    seen.slice(before304).some((h) => h["if-none-match"] === '"v1"'),
    "the origin got a conditional request",
  );
  // The client's own conditional request is answered 304 from the cache.
  const c = await get(shield.url, "/reval", { "if-none-match": '"v1"' });
  assert.equal(c.status, 304);
});

test("Vary: Accept-Language variants are kept apart", async () => {
  assert.equal((await get(a.url, "/vary", { "accept-language": "en" })).body.toString(), "lang=en");
  assert.equal((await get(a.url, "/vary", { "accept-language": "fr" })).body.toString(), "lang=fr");
  const en = await get(a.url, "/vary", { "accept-language": "en" });
  assert.equal(en.body.toString(), "lang=en");
  assert.equal(en.headers["x-cache"], "HIT");
});

test("ranges are cut from the cached object; unsatisfiable is 416", async () => {
  const full = await get(a.url, "/big");
  assert.equal(full.body.length, 100_000);
  const r = await get(a.url, "/big", { range: "bytes=1000-1999" });
  assert.equal(r.status, 206);
  assert.equal(r.headers["content-range"], "bytes 1000-1999/100000");
  assert.deepEqual(r.body, full.body.subarray(1000, 2000));
  assert.equal(r.headers["x-cache"], "HIT");
  const suffix = await get(a.url, "/big", { range: "bytes=-10" });
  assert.deepEqual(suffix.body, full.body.subarray(99_990));
  assert.equal((await get(a.url, "/big", { range: "bytes=200000-" })).status, 416);
  assert.equal(hits.get("/big"), 1);
});

test("purge by tag fans out to both edges and the shield (cdn.purge op) within 1 s", async () => {
  for (const n of [a, b]) for (const p of ["/tagged/1", "/tagged/2"]) await get(n.url, p);
  const paths = runtimePaths(home);
  writeNodes(
    paths,
    [a, b, shield].map((n) => ({
      region: n.statsJson().region as string,
      url: n.url,
      pid: null,
      origin: originUrl,
      parents: [],
      startedAt: 0,
      kind: "deployed" as const,
    })),
  );
  version = "v2";
  const ctx = { config: { cdn: cdnSchema.parse({}) }, paths, log } as unknown as OpContext;
  const t0 = Date.now();
  const out = await cdnPurgeOp.run({ tag: "sport", soft: false }, ctx);
  const ms = Date.now() - t0;
  assert.equal(out.confirmed, true);
  assert.equal(out.nodes.length, 3);
  for (const n of out.nodes) assert.ok((n.purged ?? 0) >= 2, `${n.region} purged ${n.purged}`);
  assert.ok(ms < 1000, `purge took ${ms} ms`);
  for (const n of [a, b]) assert.equal((await get(n.url, "/tagged/2")).body.toString(), "/tagged/2 v2");
  // A bad purge is refused with a clear error.
  const bad = await fetch(`${a.url}/_ami/purge`, { method: "POST", body: '{"tags":"x"}' });
  assert.equal(bad.status, 400);
});

test("soft purge marks stale: the next request revalidates", async () => {
  await get(a.url, "/tagged/3");
  const before3 = hits.get("/tagged/3");
  a.purge({ urls: ["/tagged/3"], soft: true });
  const r = await get(a.url, "/tagged/3");
  assert.equal(r.headers["x-cache"], "REVALIDATED");
  assert.ok((hits.get("/tagged/3") ?? 0) >= (before3 ?? 0));
  assert.equal((await get(a.url, "/tagged/3")).headers["x-cache"], "HIT");
});

test("stale-if-error: with the origin down, the stale copy is served", async () => {
  assert.equal((await get(shield.url, "/sie")).body.toString(), `sie ${version}`);
  await new Promise((r) => setTimeout(r, 2100));
  down = true;
  try {
    const r = await get(shield.url, "/sie");
    assert.equal(r.status, 200);
    assert.equal(r.headers["x-cache"], "STALE");
    assert.equal(r.body.toString(), `sie ${version}`);
    // Nothing cached and the origin down: a clear 502.
    assert.equal((await get(shield.url, "/tagged/never")).status, 502);
  } finally {
    down = false;
  }
});

test("1,000 concurrent misses: one origin request; every waiter gets bytes before the origin finishes", async () => {
  const agent = new http.Agent({ maxSockets: Number.POSITIVE_INFINITY });
  const N = 1000;
  let firstBytes = 0;
  let allFirst: () => void = () => {};
  const gotFirst = new Promise<void>((r) => {
    allFirst = r;
  });
  const bodies = Array.from(
    { length: N },
    () =>
      new Promise<string>((resolve, reject) => {
        http
          .get(`${b.url}/slow`, { agent, headers: { host: "cdn.test" } }, (res) => {
            let s = "";
            let first = true;
            res.setEncoding("utf8");
            res.on("data", (d: string) => {
              s += d;
              if (first) {
                first = false;
                if (++firstBytes === N) allFirst();
              }
            });
            res.on("end", () => resolve(s));
          })
          .on("error", reject);
      }),
  );
  // Bounded: if waiters were made to wait for the whole object this would never resolve.
  await Promise.race([gotFirst, new Promise((r) => setTimeout(r, 20_000).unref())]);
  assert.equal(firstBytes, N, "every waiter streamed the first part while the origin still holds the response");
  assert.equal(hits.get("/slow"), 1);
  release();
  for (const s of await Promise.all(bodies)) assert.equal(s, "first-part;second-part");
  assert.equal(hits.get("/slow"), 1);
  assert.ok(b.stats.coalesced >= N - 1);
  agent.destroy();
});

test("an unkeyed header is not forwarded, so it cannot poison the cached object", async () => {
  const r = await get(a.url, "/reflect", { "x-forwarded-host": "evil.example" });
  assert.equal(r.body.toString(), "host=-");
  assert.equal((await get(a.url, "/reflect")).body.toString(), "host=-");
});

test("smuggling and header bombs are refused; the node stays up", async () => {
  const port = portOf(a);
  const clte = await raw(
    port,
    "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
  );
  assert.match(clte, /^HTTP\/1.1 400/);
  assert.doesNotMatch(clte, /admin/);
  const dupCl = await raw(port, "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde");
  assert.match(dupCl, /^HTTP\/1.1 400/);
  const sameCl = await raw(port, "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd");
  assert.match(sameCl, /^HTTP\/1.1 400/);
  const teGzip = await raw(port, "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n");
  assert.match(teGzip, /^HTTP\/1.1 400/);
  const bomb = await raw(port, `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${"a".repeat(200_000)}\r\n\r\n`);
  assert.match(bomb, /^HTTP\/1.1 (431|400)/);
  const garbage = await raw(port, "GET /\x00\x01 HTTP/1.1\r\n\r\n");
  assert.match(garbage, /^HTTP\/1.1 400/);
  assert.equal((await get(a.url, "/health")).status, 200);
  assert.equal((await get(a.url, "/tagged/1")).status, 200);
});

test("an object over maxObjectBytes is streamed through, not stored; its ranges go upstream", async () => {
  const small = new EdgeNode({ config: cdnSchema.parse({ port: 0, maxObjectBytes: 100_000 }), origin: originUrl, log });
  await small.start();
  try {
    const [whole, ranged] = await Promise.all([
      get(small.url, "/huge"),
      get(small.url, "/huge", { range: "bytes=0-9" }),
    ]);
    assert.equal(whole.body.length, 300_000);
    // The origin ignores Range: a full 200 is a correct answer to a Range request.
    assert.ok(ranged.status === 200 || ranged.status === 206);
    assert.equal(ranged.body.subarray(0, 10).toString(), "hhhhhhhhhh");
    assert.equal((await get(small.url, "/huge")).headers["x-cache"], "MISS");
    assert.equal(small.tier.count, 0);
  } finally {
    await small.close();
  }
});

test("a shield that goes down is skipped (failover to the origin)", async () => {
  await shield.close();
  const r = await get(a.url, "/tagged/failover");
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), `/tagged/failover ${version}`);
  assert.ok(a.upstreams.failovers >= 1 || a.upstreams.parents[0].healthy === false);
});
