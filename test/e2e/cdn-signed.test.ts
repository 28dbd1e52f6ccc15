/**
 * Signed URLs at the edge against a real node:http origin: a link made by the `cdn.sign` op is served (and cached
 * once for every viewer's token), while missing, forged, tampered, repeated and expired signatures get 403 from the
 * edge with no origin request; paths outside `signedPaths` need none. Clients: node:http, raw sockets (the fast
 * path) and curl.
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
import { signTarget } from "../../src/cdn/sign.ts";
import { cdnSignOp } from "../../src/cdn/sign-op.ts";
import { createLogger } from "../../src/core/logger.ts";
import type { OpContext } from "../../src/core/ops.ts";
import { runtimePaths } from "../../src/core/paths.ts";

const log = createLogger({ level: "error" });
const SECRET = "per-origin-secret-0123456789";
let originRequests = 0;
const origin = http.createServer((req, res) => {
  originRequests++;
  res.writeHead(200, { "cache-control": "max-age=600", "content-type": "text/plain" });
  res.end(`body of ${req.url}`);
});
let edge: EdgeNode;
const home = mkdtempSync(join(tmpdir(), "ami-cdn-signed-"));

function get(path: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(`${edge.url}${path}`, { headers: { host: "cdn.test" }, agent: false }, (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (d: string) => {
          body += d;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      })
      .on("error", reject);
  });
}

before(async () => {
  await new Promise<void>((r) => origin.listen(0, "127.0.0.1", r));
  const originUrl = `http://127.0.0.1:${(origin.address() as { port: number }).port}`;
  edge = new EdgeNode({
    config: cdnSchema.parse({ port: 0, region: "eu-west-1", signingSecret: SECRET, signedPaths: ["/private/"] }),
    origin: originUrl,
    log,
  });
  await edge.start();
  writeNodes(runtimePaths(home), [
    {
      region: "eu-west-1",
      url: edge.url,
      pid: null,
      origin: originUrl,
      parents: [],
      startedAt: 0,
      kind: "deployed",
      signingSecret: SECRET,
    },
  ]);
});

after(async () => {
  await edge.close();
  origin.closeAllConnections();
  await new Promise((r) => origin.close(r));
  rmSync(home, { recursive: true, force: true });
});

test("a link from `cdn sign` is served; every viewer's token shares one cached object; the origin never sees it", async () => {
  const ctx = { config: { cdn: cdnSchema.parse({}) }, paths: runtimePaths(home), log } as unknown as OpContext;
  const signed = await cdnSignOp.run({ path: "/private/v.ts", region: "eu-west-1", ttl: 60 }, ctx);
  assert.ok(signed.url.startsWith(`${edge.url}/private/v.ts?expires=`));
  const { stdout } = await promisify(execFile)("curl", ["-s", "-D", "-", "-H", "Host: cdn.test", signed.url]);
  assert.match(stdout, /^HTTP\/1.1 200/);
  assert.match(stdout, /x-cache: MISS/i);
  // The origin was asked for the path without the signature parameters.
  assert.match(stdout, /body of \/private\/v.ts$/);
  const other = signTarget(SECRET, "/private/v.ts", Math.floor(Date.now() / 1000) + 120);
  const hit = await get(other);
  assert.equal(hit.status, 200);
  assert.equal(hit.headers["x-cache"], "HIT");
  assert.equal(originRequests, 1);
  // Other parameters stay in the key and reach the origin.
  const q = await get(`${signTarget(SECRET, "/private/v.ts", Math.floor(Date.now() / 1000) + 60)}&v=2`);
  assert.equal(q.body, "body of /private/v.ts?v=2");
  // A path with characters the client percent-encodes is signed in that form.
  const uni = await cdnSignOp.run({ path: "/private/café.ts", region: "eu-west-1", ttl: 60 }, ctx);
  assert.equal((await get(uni.target)).status, 200);
  await assert.rejects(
    cdnSignOp.run({ path: "/x", region: "nowhere", ttl: 60 }, ctx),
    (e: Error & { code?: string }) => e.code === "AMI_INVALID_INPUT",
  );
});

test("missing, forged, tampered, repeated and expired signatures: 403 from the edge, no origin request", async () => {
  await get(signTarget(SECRET, "/private/w.ts", Math.floor(Date.now() / 1000) + 60));
  const before = originRequests;
  const good = signTarget(SECRET, "/private/w.ts", Math.floor(Date.now() / 1000) + 60);
  const sig = good.split("sig=")[1];
  const exp = Number(/expires=(\d+)/.exec(good)?.[1]);
  const bad = [
    "/private/w.ts",
    "/private/never-fetched",
    signTarget("another-secret-0123456789", "/private/w.ts", exp),
    good.replace("/w.ts", "/x.ts"),
    good.replace(`expires=${exp}`, `expires=${exp + 3600}`),
    `${good}&sig=${sig}`,
    signTarget(SECRET, "/private/w.ts", Math.floor(Date.now() / 1000) - 1),
    `/private/w.ts?expires=${"9".repeat(5000)}&sig=${sig}`,
    `/private/w.ts?expires=${exp}&sig=${"%00".repeat(20)}`,
  ];
  for (const t of bad) {
    const r = await get(t);
    assert.equal(r.status, 403, t);
    assert.equal(JSON.parse(r.body).errcode, "M_FORBIDDEN");
  }
  // The fast path (raw socket, simple GET) refuses too, and the connection keeps working for a good request.
  const out = await new Promise<string>((resolve) => {
    const s = connect(Number(new URL(edge.url).port), "127.0.0.1");
    let text = "";
    s.on("data", (d) => {
      text += d;
      if ((text.match(/HTTP\/1.1 /g) ?? []).length === 2 && text.endsWith("w.ts")) s.end();
    });
    s.on("close", () => resolve(text));
    s.write(`GET /private/w.ts HTTP/1.1\r\nHost: cdn.test\r\n\r\nGET ${good} HTTP/1.1\r\nHost: cdn.test\r\n\r\n`);
    setTimeout(() => s.destroy(), 3000);
  });
  assert.match(out, /^HTTP\/1.1 403/);
  assert.match(out, /HTTP\/1.1 200[\s\S]*body of \/private\/w.ts$/);
  assert.equal(originRequests, before, "no refused request reached the origin");
  assert.equal(edge.stats.forbidden, bad.length + 1);
  const forbiddenBefore = edge.stats.forbidden;
  // Paths that reach a signed prefix through dot segments, encoding or case need a signature too.
  for (const path of [
    "/public/../private/w.ts",
    "/public/%2e%2e/private/w.ts",
    "/public%2F..%2Fprivate/w.ts",
    "/PRIVATE/w.ts",
  ]) {
    const raw = await new Promise<string>((resolve) => {
      const s = connect(Number(new URL(edge.url).port), "127.0.0.1");
      let text = "";
      s.on("data", (d) => {
        text += d;
      });
      s.on("close", () => resolve(text));
      s.write(`GET ${path} HTTP/1.1\r\nHost: cdn.test\r\nConnection: close\r\n\r\n`);
      setTimeout(() => s.destroy(), 3000);
    });
    assert.match(raw, /^HTTP\/1.1 403/, path);
  }
  assert.equal(edge.stats.forbidden, forbiddenBefore + 4);
  assert.equal(originRequests, before, "no refused request reached the origin");
  // Outside signedPaths no signature is needed.
  assert.equal((await get("/public/p")).status, 200);
});
