/**
 * Range slices against a real node:http origin that answers Range (206) on a 10 MiB object: a Range request on the
 * cold object pulls only the 1 MiB slices it touches, each slice is cached and coalesced, boundaries and suffix
 * ranges are exact, absurd ranges are 416 (without asking the origin again once the size is known), an origin
 * without Range support gets the ordinary path, and an object that changes between slices is not stitched.
 */
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, test } from "node:test";
import { cdnSchema } from "../../src/cdn/config.ts";
import { EdgeNode } from "../../src/cdn/node.ts";
import { createLogger } from "../../src/core/logger.ts";

const log = createLogger({ level: "error" });
const SIZE = 10 * 1024 * 1024;
const S = 1024 * 1024;
const byteAt = (i: number) => (i * 13 + 5) % 251;
const expected = (a: number, b: number) => Buffer.from(Array.from({ length: b - a + 1 }, (_, k) => byteAt(a + k)));
let originRequests = 0;
let originBytes = 0;
let etag = '"v1"';
let changeEveryRequest = false;

const origin = http.createServer((req, res) => {
  originRequests++;
  if (changeEveryRequest) etag = `"v${originRequests}"`;
  const path = req.url ?? "/";
  const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "");
  const common = { "cache-control": "max-age=600", etag, "accept-ranges": "bytes", "surrogate-key": "big" };
  if (path === "/norange" || !m) {
    const body = Buffer.alloc(1000, "n");
    res.writeHead(200, { ...common, "content-length": body.length });
    return res.end(body);
  }
  const a = Number(m[1]);
  if (a >= SIZE) {
    res.writeHead(416, { "content-range": `bytes */${SIZE}` });
    return res.end();
  }
  const b = Math.min(Number(m[2]), SIZE - 1);
  const body = expected(a, b);
  originBytes += body.length;
  res.writeHead(206, { ...common, "content-range": `bytes ${a}-${b}/${SIZE}`, "content-length": body.length });
  res.end(body);
});
let edge: EdgeNode;

function get(
  path: string,
  range?: string,
  method = "GET",
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer; complete: boolean }> {
  return new Promise((resolve, reject) => {
    http
      .request(
        `${edge.url}${path}`,
        { method, headers: { host: "cdn.test", ...(range ? { range } : {}) }, agent: false },
        (res) => {
          const cs: Buffer[] = [];
          res.on("data", (c) => cs.push(c));
          const done = () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: Buffer.concat(cs),
              complete: res.complete,
            });
          res.on("end", done);
          res.on("aborted", done);
          res.on("error", done);
        },
      )
      .on("error", reject)
      .end();
  });
}

before(async () => {
  await new Promise<void>((r) => origin.listen(0, "127.0.0.1", r));
  edge = new EdgeNode({
    config: cdnSchema.parse({ port: 0, sliceBytes: S, memoryBytes: 64 * S, maxObjectBytes: 2 * S }),
    origin: `http://127.0.0.1:${(origin.address() as { port: number }).port}`,
    log,
  });
  await edge.start();
});

after(async () => {
  await edge.close();
  origin.closeAllConnections();
  await new Promise((r) => origin.close(r));
});

test("a Range request on a cold 10 MiB object pulls one slice, then hits", async () => {
  const r = await get("/large", "bytes=5000000-5000099");
  assert.equal(r.status, 206);
  assert.equal(r.headers["content-range"], `bytes 5000000-5000099/${SIZE}`);
  assert.deepEqual(r.body, expected(5000000, 5000099));
  assert.equal(originRequests, 1);
  assert.equal(originBytes, S, "only the slice holding the range came from the origin");
  const again = await get("/large", "bytes=5000050-5000149");
  assert.equal(again.headers["x-cache"], "HIT");
  assert.deepEqual(again.body, expected(5000050, 5000149));
  assert.equal(originRequests, 1);
});

test("slice boundaries, ranges over several slices, suffix and open ranges are exact", async () => {
  const cases: [string, number, number][] = [
    ["bytes=0-0", 0, 0],
    [`bytes=${S - 1}-${S - 1}`, S - 1, S - 1],
    [`bytes=${S}-${S}`, S, S],
    [`bytes=${S - 6}-${S + 9}`, S - 6, S + 9],
    [`bytes=${3 * S - 1}-${5 * S}`, 3 * S - 1, 5 * S],
    ["bytes=-10", SIZE - 10, SIZE - 1],
    [`bytes=${SIZE - 1}-`, SIZE - 1, SIZE - 1],
    [`bytes=${SIZE - 5}-${SIZE + 1000}`, SIZE - 5, SIZE - 1],
  ];
  for (const [range, a, b] of cases) {
    const r = await get("/large", range);
    assert.equal(r.status, 206, range);
    assert.equal(r.headers["content-range"], `bytes ${a}-${b}/${SIZE}`, range);
    assert.equal(Number(r.headers["content-length"]), b - a + 1, range);
    assert.ok(r.body.equals(expected(a, b)), range);
  }
  const head = await get("/large", "bytes=10-19", "HEAD");
  assert.equal(head.status, 206);
  assert.equal(head.headers["content-length"], "10");
  assert.equal(head.body.length, 0);
  // Each slice came from the origin once.
  assert.equal(originBytes, originRequests * S);
});

test("absurd ranges: 416, and no origin request once the size is known", async () => {
  const before = originRequests;
  for (const range of [`bytes=${SIZE}-`, "bytes=99999999999999999999-", `bytes=${SIZE + 5}-${SIZE + 9}`]) {
    const r = await get("/large", range);
    assert.equal(r.status, 416, range);
    assert.equal(r.headers["content-range"], `bytes */${SIZE}`);
  }
  assert.equal(originRequests, before);
  // Cold object, range past its end: the origin's 416 is passed on.
  const cold = await get("/large2", "bytes=99999999999-");
  assert.equal(cold.status, 416);
  assert.equal(cold.headers["content-range"], `bytes */${SIZE}`);
  // Not a single byte range: the ordinary path answers (here: the origin's whole 200 body when it ignores it).
  assert.equal((await get("/norange", "bytes=0-1,5-6")).status, 200);
  assert.equal((await get("/health")).status, 200);
});

test("concurrent ranges in one cold slice: one origin request", async () => {
  const before = originRequests;
  const rs = await Promise.all(
    Array.from({ length: 20 }, (_, k) => get("/large3", `bytes=${7 * S + k * 100}-${7 * S + k * 100 + 99}`)),
  );
  for (const [k, r] of rs.entries()) assert.ok(r.body.equals(expected(7 * S + k * 100, 7 * S + k * 100 + 99)));
  assert.equal(originRequests - before, 1);
});

test("an origin that ignores Range gets the ordinary path; a changing object is not stitched", async () => {
  const r = await get("/norange", "bytes=0-9");
  assert.equal(r.status, 206);
  assert.equal(r.body.toString(), "nnnnnnnnnn");
  changeEveryRequest = true;
  try {
    const cut = await get("/large4", `bytes=${S - 10}-${S + 10}`);
    assert.equal(cut.complete, false, "the answer was cut short instead of mixing two versions");
    assert.ok(cut.body.length < 21);
  } finally {
    changeEveryRequest = false;
  }
  assert.equal((await get("/health")).status, 200);
});
