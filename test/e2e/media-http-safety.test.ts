/**
 * The media HTTP server on the core/http kit, attacked over raw sockets: malformed targets (`%ff`, `//[`,
 * `//x:99999`), garbage request lines, huge and malformed WHIP bodies all answer 4xx JSON, never 5xx, and the
 * server keeps serving a real ffmpeg RTMP publish as HLS afterwards. /api needs the control token and sends
 * no CORS header; playlists stay public.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { configSchema } from "../../src/config.ts";
import { createLogger } from "../../src/core/logger.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { bodyOf, sendRaw, statusOf } from "../../src/test/raw-http.ts";
import { publish, until } from "./helpers/media-tools.ts";

const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
const opts = { skip: hasFfmpeg ? false : "ffmpeg is not installed" };
const TOKEN = randomBytes(16).toString("hex");
const dir = mkdtempSync(join(tmpdir(), "ami-media-http-"));
const lines: string[] = [];
let m: MediaServer;
let port: number;

before(async () => {
  const media = { rtmpPort: 0, httpPort: 0, srtPort: 0, rtsp: { port: 0 } };
  const log = createLogger({ level: "debug", write: (l) => lines.push(l) });
  m = await MediaServer.start(configSchema.parse({ media }).media, log, { dataDir: dir, apiToken: TOKEN });
  port = m.http.port;
});

after(async () => {
  await m?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Sends `text` on a fresh connection to the media server; everything it wrote before closing (or `waitMs`). */
const raw = (text: string | Buffer, waitMs = 3000) => sendRaw(port, text, { waitMs });
const auth = `Authorization: Bearer ${TOKEN}\r\n`;
const get = (target: string, headers = "") =>
  raw(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}Connection: close\r\n\r\n`);

function assertClientError(r: string, what: string): void {
  const status = statusOf(r);
  assert.ok(status >= 400 && status < 500, `${what}: ${status || "no answer"} ${r.slice(0, 200)}`);
  assert.match(r, /content-type: application\/json/i, what);
  const j = JSON.parse(bodyOf(r)) as { errcode?: string };
  assert.equal(typeof j.errcode, "string", what);
}

test("malformed request targets and garbage request lines answer 4xx JSON, never 5xx", async () => {
  const cases: Array<[string, string, number?]> = [
    ["/api/streams/%ff", "", 401],
    ["/api/streams/%ff", auth, 400],
    ["/api/pulls/%ff", auth],
    ["//[", ""],
    ["//x:99999", ""],
    ["//[", auth],
    ["/%ff/index.m3u8", "", 400],
    ["/live/%ff/stream.m3u8?_HLS_msn=1", "", 400],
    ["/%ff/", ""],
    ["/%E2%82/", ""],
    ["/_ami/player/%ff", ""],
    ["/live/x/stream.m3u8?_HLS_msn=%ff&_HLS_part=-1", ""],
    ["http://[/x", ""],
    ["/api/streams/a%2f..%2f..%2fetc", auth, 404],
  ];
  for (const [target, headers, want] of cases) {
    const r = await get(target, headers);
    assertClientError(r, `GET ${target}`);
    if (want) assert.equal(statusOf(r), want, `GET ${target}`);
  }
  const del = await raw(`DELETE /api/pulls/%ff HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth}Connection: close\r\n\r\n`);
  assert.equal(statusOf(del), 400);
  const whip = await raw(
    "POST /%ff/whip HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/sdp\r\nContent-Length: 3\r\n\r\nv=0",
  );
  assert.equal(statusOf(whip), 400);
  for (const garbage of [
    "GARBAGE\r\n\r\n",
    "GET\r\n\r\n",
    "GET / HTTP/9.9\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n",
    "GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n",
    `GET / HTTP/1.1\r\nHost: a\r\nX: ${"a".repeat(20_000)}\r\n\r\n`,
    "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
  ]) {
    const r = await raw(garbage);
    const status = statusOf(r);
    assert.ok(status >= 400 && status < 500, `${JSON.stringify(garbage.slice(0, 30))}: ${r.slice(0, 120)}`);
  }
  assert.equal(m.http.stats.handlerErrors, 0, "no request reached the 500 boundary");
  assert.equal((await fetch(`${m.httpUrl}/health`)).status, 200, "the server is still up");
});

test("WHIP/WHEP: huge and malformed bodies are refused with 4xx JSON", async () => {
  const head = (path: string, extra: string) =>
    // Connection: close, so each answer ends the wait instead of the 10 s timeout (the body is still complete).
    `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/sdp\r\n${extra}`;
  // Declared too large: refused before the body is read.
  const declared = await raw(`${head("/live/w/whip", "Content-Length: 50000000\r\n\r\n")}v=0\r\n`);
  assert.equal(statusOf(declared), 413);
  assert.match(declared, /connection: close/i);
  // Chunked past the limit: refused once it passes it.
  const chunk = Buffer.alloc(100_000, "a");
  const chunked = await raw(
    Buffer.concat([
      Buffer.from(`${head("/live/w/whip", "Transfer-Encoding: chunked\r\n\r\n")}${chunk.length.toString(16)}\r\n`),
      chunk,
      Buffer.from(`\r\n${chunk.length.toString(16)}\r\n`),
      chunk,
      Buffer.from("\r\n0\r\n\r\n"),
    ]),
  );
  assert.equal(statusOf(chunked), 413);
  const sdpish = (extra: string[]) =>
    [
      "v=0",
      "o=- 1 1 IN IP4 127.0.0.1",
      "s=-",
      "t=0 0",
      "m=video 9 UDP/TLS/RTP/SAVPF 96",
      "a=ice-ufrag:abcd",
      "a=ice-pwd:abcdefghijklmnopqrstuvwx",
      "a=fingerprint:sha-256 00:11",
      "a=rtpmap:96 H264/90000",
      ...extra,
      "",
    ].join("\r\n");
  const bodies = [
    "",
    "\xff\xfe\x00garbage",
    "v=0",
    sdpish(["a=mid:", "a=group:BUNDLE nonexistent", "m=audio x y z"]),
    sdpish(["a=setup:sideways", "a=rtcp-fb:96 nack pli", "a=ssrc:abc cname:x"]),
    sdpish(["m=video -1 UDP/TLS/RTP/SAVPF 96", "a=rtpmap:96 H264/90000", "a=fmtp:96 profile-level-id=zz"]),
    `${sdpish([])}${"a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n".repeat(500)}`,
  ];
  for (const kind of ["whip", "whep"])
    for (const b of bodies) {
      const r = await raw(`${head(`/live/w/${kind}`, `Content-Length: ${Buffer.byteLength(b)}\r\n\r\n`)}${b}`, 10_000);
      assertClientError(r, `${kind} ${JSON.stringify(b.slice(0, 40))}`);
    }
  const noType = await raw("POST /live/w/whip HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nv=0");
  assert.equal(statusOf(noType), 400);
  assert.equal(m.hub.get("live/w"), undefined, "no refused WHIP offer took the path");
  assert.equal(m.http.stats.handlerErrors, 0, "no request reached the 500 boundary");
});

test("after all that, a real RTMP publish plays as HLS", opts, async () => {
  const pub = publish(`${m.rtmpUrl}/live/after`, 6);
  const pl = await until("the playlist", async () => {
    const r = await fetch(`${m.httpUrl}/live/after/stream.m3u8`);
    const text = await r.text();
    return r.status === 200 && /seg\d+\.m4s/.test(text) ? { r, text } : undefined;
  });
  assert.equal(pl.r.headers.get("access-control-allow-origin"), "*", "playlists stay public");
  const seg = /(seg\d+\.m4s)/.exec(pl.text)?.[1] as string;
  const s = await fetch(`${m.httpUrl}/live/after/${seg}`);
  assert.equal(s.status, 200);
  assert.ok((await s.arrayBuffer()).byteLength > 1000);
  assert.equal(await pub.exit, 0);
});

test("/api needs the token and sends no CORS header; the service endpoints answer without one", async () => {
  const origin = { origin: "https://evil.example" };
  for (const p of ["/api/streams", "/api/pulls", "/api/restreams", "/api/recordings", "/api/streams/live/x"]) {
    const anon = await fetch(`${m.httpUrl}${p}`, { headers: origin });
    assert.equal(anon.status, 401, p);
    assert.equal(anon.headers.get("access-control-allow-origin"), null, p);
    const wrong = await fetch(`${m.httpUrl}${p}`, { headers: { ...origin, authorization: "Bearer nope" } });
    assert.equal(wrong.status, 401, p);
    const ok = await fetch(`${m.httpUrl}${p}`, { headers: { ...origin, authorization: `Bearer ${TOKEN}` } });
    assert.equal(ok.status, p.endsWith("/live/x") ? 404 : 200, p);
    assert.equal(ok.headers.get("access-control-allow-origin"), null, p);
  }
  const pre = await fetch(`${m.httpUrl}/api/streams`, {
    method: "OPTIONS",
    headers: { ...origin, "access-control-request-method": "GET", "access-control-request-headers": "authorization" },
  });
  assert.equal(pre.headers.get("access-control-allow-origin"), null, "a cross-origin preflight for /api fails");
  assert.equal((await fetch(`${m.httpUrl}/health`)).status, 200);
  assert.equal((await fetch(`${m.httpUrl}/_ami/stats`)).status, 200);
  assert.equal((await fetch(`${m.httpUrl}/_ami/stats`)).headers.get("access-control-allow-origin"), null);
  const page = await fetch(`${m.httpUrl}/`, { headers: origin });
  assert.equal(page.status, 200, "the list page needs no token");
});

test("malformed pull sources and restream destinations are 400s whose errors do not repeat the URL", async () => {
  const post = (p: string, body: unknown) =>
    fetch(`${m.httpUrl}${p}`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  for (const [p, body] of [
    ["/api/pulls", { source: "rtsp://admin:hunter2@[" }],
    ["/api/pulls", { source: "file://u:hunter2@[x" }],
    ["/api/pulls", { source: "gopher://u:hunter2@x/y" }],
    ["/api/restreams", { path: "live/x", to: "http://u:hunter2@x/y" }],
    ["/api/pulls", "not an object"],
  ] as const) {
    const r = await post(p, body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.ok(!(await r.text()).includes("hunter2"), JSON.stringify(body));
  }
  const bad = await fetch(`${m.httpUrl}/api/pulls`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}` },
    body: "{nope",
  });
  assert.equal(bad.status, 400);
  assert.equal(m.http.stats.handlerErrors, 0, "no request reached the 500 boundary");
  assert.ok(!lines.join("\n").includes("hunter2"), "the log has no password");
});
