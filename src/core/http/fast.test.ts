import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { after, test } from "node:test";
import { sendRaw, statusesOf } from "../../test/raw-http.ts";
import { createLogger } from "../logger.ts";
import { httpDate, PrebuiltResponse, parseFast } from "./fast.ts";
import { sendJson } from "./reply.ts";
import { createHttpListener } from "./server.ts";
import { parseTarget } from "./target.ts";

const parse = (s: string, max = 16_384) => parseFast(Buffer.from(s, "latin1"), 0, max, "1.2.3.4");

test("parser: a simple complete GET or HEAD is recognised with its path, query and headers", () => {
  const p = parse("GET /live/a/stream.m3u8?_HLS_skip=YES HTTP/1.1\r\nHost: x:1\r\nUser-Agent:  hls.js \r\n\r\n");
  assert.ok(p);
  assert.equal(p.request.method, "GET");
  assert.equal(p.request.path, "/live/a/stream.m3u8");
  assert.equal(p.request.search, "?_HLS_skip=YES");
  assert.deepEqual({ ...p.request.headers }, { host: "x:1", "user-agent": "hls.js" });
  assert.equal(p.request.remoteAddress, "1.2.3.4");
  assert.equal(
    p.end,
    Buffer.byteLength("GET /live/a/stream.m3u8?_HLS_skip=YES HTTP/1.1\r\nHost: x:1\r\nUser-Agent:  hls.js \r\n\r\n"),
  );
  assert.equal(parse("HEAD / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive\r\n\r\n")?.request.method, "HEAD");
  // Two pipelined heads: the second starts where the first ends.
  const two = Buffer.from("GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n");
  const first = parseFast(two, 0, 16_384);
  assert.ok(first);
  assert.equal(parseFast(two, first.end, 16_384)?.request.path, "/b");
});

test("parser: everything unusual, malformed, split or too large is left to node:http", () => {
  const refused = [
    "GET /a HTTP/1.1\r\nHost: a\r\n", // head not complete (split over chunks)
    "GET /a HTTP/1.0\r\nHost: a\r\n\r\n",
    "GET /a HTTP/1.1\r\n\r\n", // no Host
    "POST /a HTTP/1.1\r\nHost: a\r\n\r\n",
    "OPTIONS /a HTTP/1.1\r\nHost: a\r\n\r\n",
    "get /a HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET  /a HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "GET /a HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    "GET /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
    "GET /a HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
    "GET /a HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
    "GET /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    "GET /a HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n\r\n",
    "GET /a HTTP/1.1\r\nHost: a\r\n X-Folded: b\r\n\r\n", // obs-fold
    "GET /a HTTP/1.1\r\nHost: a\r\nBad Name: b\r\n\r\n",
    "GET /a HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n",
    "GET /a HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
    "GET /a HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", // bare LF
    "GET /a HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", // bare CR
    "GET /a HTTP/1.1\r\nHost: a\x00\r\n\r\n",
    "GAARBAGE\r\n\r\n",
    "\r\n\r\n",
    "GET /a HTTP/1.1\r\nHost: a\r\nX: é\u0100\r\n\r\n".replace("\u0100", "\x7f"),
  ];
  for (const r of refused) assert.equal(parse(r), null, JSON.stringify(r));
  // Over the head-size limit: node:http answers it (431).
  const big = `GET /a HTTP/1.1\r\nHost: a\r\nX: ${"y".repeat(200)}\r\n\r\n`;
  assert.ok(parse(big, 400));
  assert.equal(parse(big, 100), null);
});

test("parser: a target is taken only when it is canonical (parseTarget gives the same path and query)", () => {
  const targets = [
    "/a/b.m3u8",
    "/a/b.m3u8?x=1&y=2",
    "/a%20b/c",
    "/a/./b",
    "/a/../b",
    "/a/%2e%2E/b",
    "/a/.hidden",
    "//evil/x",
    "/a\\b",
    '/a"b',
    "/a<b>",
    "/a`b",
    "/a{b}",
    "/a^b|c",
    "/a#frag",
    "/a?q='x'",
    '/a?q="x"',
    "/a?q=<x>",
    "/a?",
    "/a??b",
    "/a?b=/c?d",
    "/~user/a;b,c=d:e@f!$&'()*+",
  ];
  let taken = 0;
  for (const t of targets) {
    const p = parse(`GET ${t} HTTP/1.1\r\nHost: a\r\n\r\n`);
    if (!p) continue;
    taken++;
    const slow = parseTarget(t);
    assert.ok(slow, t);
    assert.equal(p.request.path, slow.pathname, t);
    assert.equal(p.request.search, slow.search, t);
  }
  assert.ok(taken >= 6, `only ${taken} taken`);
  for (const t of ["/a/./b", "/a/../b", "/a/%2e%2E/b", "//evil/x", "/a\\b", "/a#frag"])
    assert.equal(parse(`GET ${t} HTTP/1.1\r\nHost: a\r\n\r\n`), null, t);
});

test("PrebuiltResponse: status line, headers, Content-Length, Date; HEAD without the body; bad headers refused", () => {
  const r = new PrebuiltResponse(200, [["Content-Type", "text/plain"]], Buffer.from("hello"));
  const get = r.bytes("GET").toString("latin1");
  assert.equal(
    get,
    `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nDate: ${httpDate()}\r\n\r\nhello`,
  );
  assert.equal(r.bytes("HEAD").toString("latin1"), get.slice(0, -5));
  assert.match(
    new PrebuiltResponse(304, [["ETag", '"x"']]).bytes("GET").toString(),
    /^HTTP\/1.1 304 Not Modified\r\nETag: "x"\r\nDate: .*\r\n\r\n$/,
  );
  assert.throws(() => new PrebuiltResponse(200, [["X", "a\r\nInjected: 1"]]));
  assert.throws(() => new PrebuiltResponse(200, [["X Y", "a"]]));
});

// A listener whose fast responder answers `/fast...` paths and leaves the rest to its node:http handler.
const log = createLogger({ write: () => {} });
const seen: string[] = [];
const BIG = new PrebuiltResponse(200, [], Buffer.alloc(200_000, "b"));
const l = createHttpListener({
  name: "fast test",
  log,
  limits: { headersTimeoutMs: 400, keepAliveTimeoutMs: 600, maxConnectionsPerAddress: 50 },
  handler(req, res, target) {
    seen.push(`${req.method} ${target.pathname}${target.search}`);
    // Not sendJson: in a synchronous handler it closes the connection (req.complete is still false there).
    const body = JSON.stringify({ slow: target.pathname });
    res.writeHead(200, { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) });
    res.end(req.method === "HEAD" ? undefined : body);
  },
  fast(r) {
    if (r.path === "/fast-throw") throw new Error("fast boom");
    if (r.path === "/fast-big") return BIG.bytes(r.method);
    if (!r.path.startsWith("/fast")) return undefined;
    const body = Buffer.from(JSON.stringify({ fast: r.path, search: r.search, ua: r.headers["user-agent"] ?? null }));
    return new PrebuiltResponse(200, [["Content-Type", "application/json"]], body).bytes(r.method);
  },
});
const port = await l.listen(0, "127.0.0.1");
after(() => l.close());

const get = (path: string, extra = "") => `GET ${path} HTTP/1.1\r\nHost: a\r\n${extra}\r\n`;

/** Writes each part after the previous one was flushed and a pause, so they arrive as separate TCP chunks. */
async function chunked(parts: string[], waitMs = 600): Promise<{ text: string; closed: boolean }> {
  const s: Socket = connect(port, "127.0.0.1");
  s.setNoDelay(true);
  let text = "";
  let closed = false;
  s.on("data", (d) => {
    text += d.toString("latin1");
  });
  s.on("close", () => {
    closed = true;
  });
  s.on("error", () => {});
  await new Promise((r) => s.once("connect", r));
  for (const p of parts) {
    await new Promise((r) => s.write(p, r));
    await new Promise((r) => setTimeout(r, 60));
  }
  await new Promise((r) => setTimeout(r, waitMs));
  s.destroy();
  return { text, closed };
}

test("fast answers on a keep-alive connection; what it does not answer goes to node:http on the same connection, in order", async () => {
  const before = { ...l.stats };
  const r = await chunked([get("/fast/1", "User-Agent: t\r\n"), get("/fast/2?x=1"), get("/other"), get("/fast/3")]);
  const bodies = r.text.split(/HTTP\/1\.1 200 OK\r\n/).slice(1);
  assert.equal(bodies.length, 4, r.text);
  assert.match(bodies[0] as string, /\{"fast":"\/fast\/1","search":"","ua":"t"\}$/);
  assert.match(bodies[1] as string, /"search":"\?x=1"/);
  assert.match(bodies[2] as string, /\{"slow":"\/other"\}$/);
  // Once handed over, the connection stays with node:http.
  assert.match(bodies[3] as string, /\{"slow":"\/fast\/3"\}$/);
  assert.equal(l.stats.fast - before.fast, 2);
  assert.equal(l.stats.handedOff - before.handedOff, 1);
});

test("pipelined requests: fast ones answered in one go, the rest handed over with its bytes, answers in order", async () => {
  const before = { ...l.stats };
  const text = await sendRaw(
    port,
    get("/fast/a") + get("/fast/b") + get("/x?y=1") + get("/fast/c", "Connection: close\r\n"),
  );
  assert.deepEqual(statusesOf(text), [200, 200, 200, 200]);
  const order = [...text.matchAll(/"(fast|slow)":"([^"]+)"/g)].map((m) => `${m[1]} ${m[2]}`);
  assert.deepEqual(order, ["fast /fast/a", "fast /fast/b", "slow /x", "slow /fast/c"]);
  assert.equal(l.stats.fast - before.fast, 2);
  assert.ok(seen.includes("GET /x?y=1"));
});

test("a head split across TCP chunks, HTTP/1.0 and Connection: close are served by node:http", async () => {
  const split = await chunked(["GET /fast/split HT", "TP/1.1\r\nHost: a\r\n", "\r\n"]);
  assert.match(split.text, /^HTTP\/1\.1 200[\s\S]*\{"slow":"\/fast\/split"\}$/);
  const http10 = await sendRaw(port, "GET /fast/old HTTP/1.0\r\nHost: a\r\n\r\n");
  assert.match(http10, /^HTTP\/1\.1 200[\s\S]*Connection: close[\s\S]*"slow":"\/fast\/old"/i);
  const close = await chunked([get("/fast/c1"), get("/fast/c2", "Connection: close\r\n")], 300);
  assert.deepEqual(statusesOf(close.text), [200, 200]);
  assert.match(close.text, /"fast":"\/fast\/c1"[\s\S]*Connection: close[\s\S]*"slow":"\/fast\/c2"/i);
  assert.ok(close.closed, "the connection closed after the Connection: close answer");
});

test("garbage, oversized heads, bodies and a throwing fast responder get the kit's usual answers", async () => {
  assert.match(await sendRaw(port, "GARBAGE\r\n\r\n"), /^HTTP\/1.1 400[\s\S]*AMI_INVALID_INPUT/);
  assert.match(await sendRaw(port, get("/fast/x") + "GARBAGE\r\n\r\n"), /^HTTP\/1.1 200[\s\S]*HTTP\/1.1 400/);
  const huge = get("/fast/big", `X-Big: ${"z".repeat(20_000)}\r\n`);
  assert.match(await sendRaw(port, huge), /^HTTP\/1.1 431/);
  assert.match(
    await sendRaw(port, "GET /fast/t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
    /^HTTP\/1.1 400/,
  );
  assert.match(
    await sendRaw(port, "GET /a/../fast/dots HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
    /"slow":"\/fast\/dots"/,
  );
  const errors = l.stats.handlerErrors;
  // The fast responder throws: logged, and the request goes to node:http's path (which answers it).
  const thrown = await sendRaw(port, get("/fast-throw"), { until: (a) => a.includes("}") });
  assert.match(thrown, /^HTTP\/1.1 200[\s\S]*"slow":"\/fast-throw"/);
  assert.equal(l.stats.handlerErrors, errors + 1);
});

test("timeouts: a silent connection and an idle keep-alive one are closed; a slow head gets node:http's 408", async () => {
  const silent = await chunked([], 1_500);
  assert.equal(silent.text, "");
  assert.ok(silent.closed, "a connection that never sends a request is closed (headers timeout)");
  const idle = await chunked([get("/fast/idle")], 1_500);
  assert.deepEqual(statusesOf(idle.text), [200]);
  assert.ok(idle.closed, "an idle keep-alive connection is closed (keep-alive timeout)");
  const slow = await chunked(["GET /fast/slowloris HTTP/1.1\r\nHost: a\r\n"], 2_500);
  assert.match(slow.text, /^HTTP\/1.1 408/);
  assert.ok(slow.closed);
});

test("a client that never reads its answers is paused, not buffered without bound; it is served once it reads", async () => {
  const s = connect(port, "127.0.0.1");
  s.on("error", () => {});
  await new Promise((r) => s.once("connect", r));
  s.pause();
  const before = l.stats.fast;
  // 300 pipelined requests for a 200 kB answer each (60 MB): the server stops reading long before it wrote them all.
  s.write(get("/fast-big").repeat(300));
  await new Promise((r) => setTimeout(r, 500));
  const unread = l.stats.fast - before;
  let bytes = 0;
  s.on("data", (d: Buffer) => {
    bytes += d.length;
  });
  s.resume();
  for (let i = 0; i < 100 && l.stats.fast - before < 300; i++) await new Promise((r) => setTimeout(r, 100));
  s.destroy();
  assert.ok(unread < 150, `${unread} answers written to a client that read none`);
  assert.equal(l.stats.fast - before, 300, `all answered once it reads (${bytes} bytes read)`);
});

test("the connection caps hold on the fast path", async () => {
  const capped = createHttpListener({
    name: "capped",
    log,
    limits: { maxConnectionsPerAddress: 2 },
    handler: (_q, res) => sendJson(res, 200, {}),
    fast: (r) => new PrebuiltResponse(200, [], Buffer.from(r.path)).bytes(r.method),
  });
  const p = await capped.listen(0, "127.0.0.1");
  try {
    const held = [connect(p, "127.0.0.1"), connect(p, "127.0.0.1")];
    await Promise.all(held.map((s) => new Promise((r) => s.once("connect", r))));
    await new Promise((r) => setTimeout(r, 100));
    assert.match(await sendRaw(p, get("/x")), /^HTTP\/1.1 503/);
    assert.equal(capped.stats.refused, 1);
    for (const s of held) s.destroy();
    await new Promise((r) => setTimeout(r, 100));
    assert.match(await sendRaw(p, get("/x", "Connection: close\r\n")), /^HTTP\/1.1 200/);
  } finally {
    await capped.close();
  }
});
