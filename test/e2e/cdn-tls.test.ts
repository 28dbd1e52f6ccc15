/**
 * TLS termination at the edge: a certificate made by openssl, the node's HTTPS listener beside its plain one,
 * curl over HTTPS (miss then hit, one origin request), plain HTTP and garbage sent to the TLS port refused with the
 * node staying up, and an unreadable key file reported as a config error.
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
import { createLogger } from "../../src/core/logger.ts";

const run = promisify(execFile);
const log = createLogger({ level: "error" });
const dir = mkdtempSync(join(tmpdir(), "ami-cdn-tls-"));
let originRequests = 0;
const origin = http.createServer((req, res) => {
  originRequests++;
  res.writeHead(200, { "cache-control": "max-age=600" });
  res.end(`secure ${req.url}`);
});
let edge: EdgeNode;

before(async () => {
  await run("openssl", [
    ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"],
    ...["-subj", "/CN=cdn.test", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")],
  ]);
  await new Promise<void>((r) => origin.listen(0, "127.0.0.1", r));
  edge = new EdgeNode({
    config: cdnSchema.parse({
      port: 0,
      tls: { port: 0, certFile: join(dir, "cert.pem"), keyFile: join(dir, "key.pem") },
    }),
    origin: `http://127.0.0.1:${(origin.address() as { port: number }).port}`,
    log,
  });
  await edge.start();
});

after(async () => {
  await edge.close();
  origin.closeAllConnections();
  await new Promise((r) => origin.close(r));
  rmSync(dir, { recursive: true, force: true });
});

test("curl over HTTPS: miss then hit, one origin request", async () => {
  assert.match(edge.tlsUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
  const curl = async () =>
    (await run("curl", ["-sk", "--http1.1", "-D", "-", "-H", "Host: cdn.test", `${edge.tlsUrl}/s.ts`])).stdout;
  const first = await curl();
  assert.match(first, /^HTTP\/1.1 200/);
  assert.match(first, /x-cache: MISS/i);
  assert.match(first, /secure \/s.ts$/);
  assert.match(await curl(), /x-cache: HIT/i);
  assert.equal(originRequests, 1);
  // Certificate verification against the generated certificate works (no -k).
  const verified = await run("curl", [
    ...["-s", "--cacert", join(dir, "cert.pem"), "--resolve", `cdn.test:${new URL(edge.tlsUrl).port}:127.0.0.1`],
    `https://cdn.test:${new URL(edge.tlsUrl).port}/s.ts`,
  ]);
  assert.equal(verified.stdout, "secure /s.ts");
});

test("plain HTTP and garbage on the TLS port are refused; both listeners stay up", async () => {
  const port = Number(new URL(edge.tlsUrl).port);
  for (const bytes of ["GET / HTTP/1.1\r\nHost: x\r\n\r\n", "\x16\x03\x01\x00\xff garbage"]) {
    const out = await new Promise<string>((resolve) => {
      const s = connect(port, "127.0.0.1");
      let text = "";
      s.on("data", (d) => {
        text += d.toString("latin1");
      });
      s.on("error", () => resolve(text));
      s.on("close", () => resolve(text));
      s.write(bytes);
      setTimeout(() => s.destroy(), 3000);
    });
    assert.doesNotMatch(out, /secure/);
  }
  assert.ok(edge.statsJson().requests !== undefined);
  assert.equal((await run("curl", ["-sk", `${edge.tlsUrl}/health`])).stdout.includes('"ok":true'), true);
  assert.equal((await fetch(`${edge.url}/health`)).status, 200);
});

test("an unreadable key file is a config error naming the key", async () => {
  const bad = new EdgeNode({
    config: cdnSchema.parse({ port: 0, tls: { port: 0, certFile: join(dir, "cert.pem"), keyFile: "/nonexistent" } }),
    origin: "http://127.0.0.1:9",
    log,
  });
  await assert.rejects(
    bad.start(),
    (e: Error & { code?: string }) => e.code === "AMI_INVALID_CONFIG" && /cdn\.tls/.test(e.message),
  );
  await bad.close();
});
