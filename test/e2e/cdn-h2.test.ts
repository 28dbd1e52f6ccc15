/**
 * HTTP/2 at the edge: the node's TLS listener negotiates h2 by ALPN (curl --http2 with certificate verification, and
 * node:http2's client) and still speaks HTTP/1.1 to clients that do not offer it. Over h2: a miss then a hit (one
 * origin request), a Range cut from the cache, a purge, a signed URL (403 without, 200 with). Hostile: a rapid-reset
 * burst (CVE-2023-44487) and a SETTINGS flood on raw TLS sockets get their session closed (GOAWAY / close), and the
 * node answers normal h2 and h1 requests afterwards.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { connect as tlsConnect } from "node:tls";
import { promisify } from "node:util";
import { cdnSchema } from "../../src/cdn/config.ts";
import { EdgeNode } from "../../src/cdn/node.ts";
import { signTarget } from "../../src/cdn/sign.ts";
import { createLogger } from "../../src/core/logger.ts";

const run = promisify(execFile);
const log = createLogger({ level: "error" });
const dir = mkdtempSync(join(tmpdir(), "ami-cdn-h2-"));
const SECRET = "h2-test-signing-secret-0123456789";
const body = Buffer.alloc(16 * 1024, "abcdefghijklmnopqrstuvwxyz");
const originHits = new Map<string, number>();
const origin = http.createServer((req, res) => {
  originHits.set(req.url ?? "", (originHits.get(req.url ?? "") ?? 0) + 1);
  res.writeHead(200, { "cache-control": "max-age=600", "surrogate-key": "h2tag", "content-type": "text/plain" });
  res.end(req.url?.startsWith("/big") ? body : `h2 ${req.url}`);
});
let edge: EdgeNode;
let port = 0;
let ca: Buffer;

before(async () => {
  await run("openssl", [
    ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"],
    ...["-subj", "/CN=cdn.test", "-addext", "subjectAltName=DNS:cdn.test"],
    ...["-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")],
  ]);
  ca = readFileSync(join(dir, "cert.pem"));
  await new Promise<void>((r) => origin.listen(0, "127.0.0.1", r));
  edge = new EdgeNode({
    config: cdnSchema.parse({
      port: 0,
      tls: { port: 0, certFile: join(dir, "cert.pem"), keyFile: join(dir, "key.pem") },
      signingSecret: SECRET,
      signedPaths: ["/signed/"],
    }),
    origin: `http://127.0.0.1:${(origin.address() as { port: number }).port}`,
    log,
  });
  await edge.start();
  port = Number(new URL(edge.tlsUrl).port);
});

after(async () => {
  await edge.close();
  origin.closeAllConnections();
  await new Promise((r) => origin.close(r));
  rmSync(dir, { recursive: true, force: true });
});

/** curl with the generated certificate verified; prints the headers, the body, then the HTTP version. */
async function curl(path: string, ...args: string[]): Promise<{ head: string; body: string; version: string }> {
  const { stdout } = await run("curl", [
    ...["-s", "--cacert", join(dir, "cert.pem"), "--resolve", `cdn.test:${port}:127.0.0.1`],
    ...["-D", "-", "-w", "\n%{http_version}", ...args, `https://cdn.test:${port}${path}`],
  ]);
  const [head, rest] = stdout.split("\r\n\r\n", 2);
  const nl = rest.lastIndexOf("\n");
  return { head, body: rest.slice(0, nl), version: rest.slice(nl + 1) };
}

type H2Answer = { status: number; headers: http2.IncomingHttpHeaders; body: Buffer };

function h2get(s: http2.ClientHttp2Session, path: string, headers: http2.OutgoingHttpHeaders = {}): Promise<H2Answer> {
  return new Promise((resolve, reject) => {
    const req = s.request({ ":path": path, ...headers });
    const chunks: Buffer[] = [];
    let h: http2.IncomingHttpHeaders = {};
    req.on("response", (x) => {
      h = x;
    });
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve({ status: Number(h[":status"]), headers: h, body: Buffer.concat(chunks) }));
    req.on("error", reject);
    if (headers[":method"] === "POST") req.end(headers["x-body"] as string);
    else req.end();
  });
}

// Certificate verified against the generated one (its name is cdn.test, the connection goes to 127.0.0.1).
const session = () => http2.connect(`https://127.0.0.1:${port}`, { ca, servername: "cdn.test" });

test("curl --http2: miss then hit over h2 (one origin request); curl --http1.1 on the same port gets the hit", async () => {
  const first = await curl("/c.txt", "--http2");
  assert.equal(first.version, "2");
  assert.match(first.head, /^HTTP\/2 200/);
  assert.match(first.head, /x-cache: MISS/i);
  assert.equal(first.body, "h2 /c.txt");
  const second = await curl("/c.txt", "--http2");
  assert.equal(second.version, "2");
  assert.match(second.head, /x-cache: HIT/i);
  const h1 = await curl("/c.txt", "--http1.1");
  assert.equal(h1.version, "1.1");
  assert.match(h1.head, /^HTTP\/1.1 200/);
  assert.match(h1.head, /x-cache: HIT/i);
  assert.equal(originHits.get("/c.txt"), 1);
  // A Range over h2 from curl, cut from the stored object.
  const r = await curl("/c.txt", "--http2", "-r", "3-5");
  assert.match(r.head, /^HTTP\/2 206/);
  assert.match(r.head, /content-range: bytes 3-5\/9/i);
  assert.equal(r.body, "/c.");
});

test("node:http2 client: miss, hit, Range, purge, signed URL on one session", async () => {
  const s = session();
  try {
    const miss = await h2get(s, "/big.bin");
    assert.equal(miss.status, 200);
    assert.equal(miss.headers["x-cache"], "MISS");
    assert.ok(miss.body.equals(body));
    const hit = await h2get(s, "/big.bin");
    assert.equal(hit.headers["x-cache"], "HIT");
    assert.ok(hit.body.equals(body));
    const range = await h2get(s, "/big.bin", { range: "bytes=100-199" });
    assert.equal(range.status, 206);
    assert.equal(range.headers["content-range"], `bytes 100-199/${body.length}`);
    assert.ok(range.body.equals(body.subarray(100, 200)));
    assert.equal(originHits.get("/big.bin"), 1);
    // Concurrent streams on the one connection, all hits.
    const many = await Promise.all(Array.from({ length: 50 }, () => h2get(s, "/big.bin")));
    assert.ok(many.every((a) => a.status === 200 && a.body.length === body.length));

    const purge = await h2get(s, "/_ami/purge", {
      ":method": "POST",
      "content-type": "application/json",
      "x-body": JSON.stringify({ tags: ["h2tag"] }),
    });
    assert.equal(purge.status, 200);
    assert.ok(JSON.parse(purge.body.toString()).purged >= 2);
    assert.equal((await h2get(s, "/big.bin")).headers["x-cache"], "MISS");
    assert.equal(originHits.get("/big.bin"), 2);

    assert.equal((await h2get(s, "/signed/v.ts")).status, 403);
    const signed = await h2get(s, signTarget(SECRET, "/signed/v.ts", Math.floor(Date.now() / 1000) + 60));
    assert.equal(signed.status, 200);
    assert.equal(signed.body.toString(), "h2 /signed/v.ts");
  } finally {
    s.close();
  }
});

// --- raw h2 frames on a TLS socket, for what a well-behaved client never sends

function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
/** HPACK: GET https, :path /c.txt, :authority cdn.test (static-table names, literal values, no indexing). */
const HEADERS_BLOCK = Buffer.concat([
  Buffer.from([0x82, 0x87]),
  Buffer.from([0x04, 6]),
  Buffer.from("/c.txt"),
  Buffer.from([0x01, 8]),
  Buffer.from("cdn.test"),
]);

/** Sends `bytes` after the preface; resolves with the frame types the server sent and whether it closed. */
function rawH2(bytes: Buffer, waitMs: number): Promise<{ types: Set<number>; closed: boolean }> {
  return new Promise((resolve) => {
    const s = tlsConnect({ host: "127.0.0.1", port, ALPNProtocols: ["h2"], rejectUnauthorized: false });
    const types = new Set<number>();
    let buf = Buffer.alloc(0);
    let closed = false;
    s.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        types.add(buf[3]);
        buf = buf.subarray(9 + len);
      }
    });
    s.on("error", () => {});
    s.on("close", () => {
      closed = true;
      clearTimeout(t);
      resolve({ types, closed });
    });
    s.on("secureConnect", () => {
      assert.equal(s.alpnProtocol, "h2");
      s.write(Buffer.concat([PREFACE, frame(0x4, 0, 0), bytes]));
    });
    const t = setTimeout(() => {
      resolve({ types, closed });
      s.destroy();
    }, waitMs);
  });
}

async function stillServes(): Promise<void> {
  const s = session();
  try {
    const a = await h2get(s, "/c.txt");
    assert.equal(a.status, 200);
    assert.equal(a.body.toString(), "h2 /c.txt");
  } finally {
    s.close();
  }
  assert.match((await curl("/c.txt", "--http1.1")).head, /^HTTP\/1.1 200/);
}

test("a rapid-reset burst (HEADERS + RST_STREAM × 5,000) gets GOAWAY; the node serves normally after", async () => {
  const parts: Buffer[] = [];
  for (let i = 0; i < 5_000; i++) {
    const id = 2 * i + 1;
    parts.push(frame(0x1, 0x4 | 0x1, id, HEADERS_BLOCK)); // END_HEADERS | END_STREAM
    parts.push(frame(0x3, 0, id, Buffer.from([0, 0, 0, 8]))); // RST_STREAM CANCEL
  }
  const before = edge.statsJson().requests as number;
  const r = await rawH2(Buffer.concat(parts), 8_000);
  assert.ok(r.types.has(0x7), `GOAWAY expected, got frame types ${[...r.types]}`);
  // The session was cut well before all 5,000 streams were served.
  assert.ok((edge.statsJson().requests as number) - before < 5_000);
  await stillServes();
});

test("a SETTINGS flood (100,000 frames) ends its session; the node serves normally after", async () => {
  const one = frame(0x4, 0, 0, Buffer.from([0, 3, 0, 0, 0, 100])); // MAX_CONCURRENT_STREAMS = 100
  const r = await rawH2(Buffer.concat(Array.from({ length: 100_000 }, () => one)), 8_000);
  assert.ok(r.types.has(0x7) || r.closed, `GOAWAY or close expected, got frame types ${[...r.types]}`);
  await stillServes();
});
