import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, test } from "node:test";
import { sendRaw } from "../../test/raw-http.ts";
import { createLogger } from "../logger.ts";
import { bearerMatches } from "./bearer.ts";
import { readJson } from "./body.ts";
import { allowedHosts, rebindingRefusal } from "./host-check.ts";
import { sendJson } from "./reply.ts";
import { createHttpListener } from "./server.ts";

const lines: string[] = [];
const log = createLogger({ write: (l) => lines.push(l) });

const raw = (port: number, text: string, waitMs = 2_000) => sendRaw(port, text, { waitMs });

const l = createHttpListener({
  name: "test",
  log,
  limits: { headersTimeoutMs: 500, maxConnectionsPerAddress: 20 },
  async handler(req, res, target) {
    if (target.pathname === "/throw") throw new Error("boom");
    if (target.pathname === "/reject") return Promise.reject(new Error("async boom"));
    if (target.pathname === "/json") return sendJson(res, 200, await readJson(req, 16));
    sendJson(res, 200, { path: target.pathname });
  },
});
const port = await l.listen(0, "127.0.0.1");
after(() => l.close());

test("malformed targets get 400 JSON; a throwing or rejecting handler gets 500; the listener keeps serving", async () => {
  for (const t of ["//[", "//x:99999", "x"]) {
    const r = await raw(port, `GET ${t} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
    assert.match(r, t === "x" ? /^HTTP\/1.1 400/ : /^HTTP\/1.1 200/, t);
  }
  assert.match(await raw(port, "GET /throw HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"), /^HTTP\/1.1 500/);
  assert.match(await raw(port, "GET /reject HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"), /^HTTP\/1.1 500/);
  assert.match(await raw(port, "GARBAGE\r\n\r\n"), /^HTTP\/1.1 400/);
  assert.ok(l.stats.handlerErrors >= 2);
  assert.ok(lines.some((x) => x.includes("boom")));
  const ok = await fetch(`http://127.0.0.1:${port}/fine`);
  assert.equal(ok.status, 200);
});

test("a body over the limit is refused with 413: a short declared one is drained (keep-alive), others close", async () => {
  // Declared 100 bytes: answered at once; the client may go on sending them and then use the connection again.
  const body = "x".repeat(100);
  const both = await raw(
    port,
    `POST /json HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n${body}GET /again HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`,
  );
  assert.match(both, /^HTTP\/1.1 413/);
  assert.doesNotMatch(both.split("\r\n\r\n")[0], /Connection: close/i);
  assert.match(both, /HTTP\/1.1 200[\s\S]*"\/again"/, "the drained body was not parsed as a request; the next one was");
  // Too large to be worth draining, or not framed by a length: the connection closes.
  const huge = await raw(port, "POST /json HTTP/1.1\r\nHost: a\r\nContent-Length: 100000000\r\n\r\n{}");
  assert.match(huge, /^HTTP\/1.1 413[\s\S]*Connection: close/i);
  const chunked = await raw(
    port,
    `POST /json HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n${body}\r\n`,
  );
  assert.match(chunked, /^HTTP\/1.1 413[\s\S]*Connection: close/i);
});

test("a synchronous JSON answer to a bodyless GET keeps the connection (no Connection: close)", async () => {
  // The handler answers before node has marked the request complete; with no Content-Length and no
  // Transfer-Encoding the request has no body (RFC 9112 6.3), so there is nothing to drain and no reason to close.
  const both = await raw(
    port,
    "GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
  );
  assert.doesNotMatch(both.split("\r\n\r\n")[0], /Connection: close/i);
  assert.match(both, /HTTP\/1.1 200[\s\S]*"\/one"[\s\S]*HTTP\/1.1 200[\s\S]*"\/two"/);
});

test("slow headers are cut off by the header timeout", async () => {
  const r = await raw(port, "GET / HTTP/1.1\r\nHost: a\r\n", 4_000);
  assert.match(r, /^HTTP\/1.1 408/);
});

test("connections past the per-address cap are answered 503", async () => {
  const held = await Promise.all(
    Array.from(
      { length: 20 },
      () =>
        new Promise<import("node:net").Socket>((r) => {
          const s = connect(port, "127.0.0.1", () => r(s));
        }),
    ),
  );
  await new Promise((r) => setTimeout(r, 100));
  const r = await raw(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  assert.match(r, /^HTTP\/1.1 503/);
  for (const s of held) s.destroy();
  await new Promise((r) => setTimeout(r, 100));
  assert.equal((await fetch(`http://127.0.0.1:${port}/x`)).status, 200);
});

test("bearer checks are exact", () => {
  assert.equal(bearerMatches("Bearer abc", "abc"), true);
  assert.equal(bearerMatches("bearer  abc", "abc"), true);
  assert.equal(bearerMatches("Bearer abcd", "abc"), false);
  assert.equal(bearerMatches("abc", "abc"), false);
  assert.equal(bearerMatches(undefined, "abc"), false);
  assert.equal(bearerMatches("Bearer ", ""), false);
});

test("Host and Origin checks refuse rebinding", () => {
  const allowed = allowedHosts("127.0.0.1");
  const req = (headers: Record<string, string>) => ({ headers }) as unknown as import("node:http").IncomingMessage;
  assert.equal(rebindingRefusal(req({ host: "127.0.0.1:8470" }), allowed), null);
  assert.equal(rebindingRefusal(req({ host: "localhost:8470", origin: "http://localhost:3000" }), allowed), null);
  assert.equal(rebindingRefusal(req({ host: "[::1]:8470" }), allowed), null);
  assert.equal(rebindingRefusal(req({ host: "192.168.1.5:8470" }), allowed), null, "an IP literal is no rebinding");
  assert.notEqual(rebindingRefusal(req({ host: "127.0.0.1", origin: "http://192.168.1.5" }), allowed), null);
  assert.notEqual(rebindingRefusal(req({ host: "evil.example:8470" }), allowed), null);
  assert.notEqual(rebindingRefusal(req({ host: "127.0.0.1:8470", origin: "http://evil.example" }), allowed), null);
  assert.notEqual(rebindingRefusal(req({ host: "127.0.0.1", origin: "null" }), allowed), null);
  assert.notEqual(rebindingRefusal(req({}), allowed), null);
});
