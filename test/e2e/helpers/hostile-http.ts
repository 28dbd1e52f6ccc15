/**
 * Seeded hostile HTTP/1.1 input for the listener suite: malformed request targets, percent-encoding errors,
 * `//host:badport`, bare LF and CR line ends, CL+TE smuggling shapes, oversized and NUL-carrying headers,
 * broken chunked bodies, junk upgrades, and raw garbage. Each case is the exact bytes a hostile client sends
 * (`sendRaw` of src/test/raw-http.ts sends them).
 */
import { prng } from "./client.ts";

const TARGETS = [
  "//[",
  "//x:99999",
  "//x:-1/",
  "//[::1:80/",
  "/%ff",
  "/%",
  "/%%30",
  "/%E2%82",
  "/api/streams/%ff",
  "/api/streams/%",
  "/%ff/index.m3u8",
  "/live/%ff/whip",
  "/_matrix/client/v3/rooms/%ff/messages",
  "/_matrix/client/v3/sync?since=%ff&timeout=abc",
  "/_matrix/client/v3/profile/%ff",
  "/_matrix/media/v3/download/%ff/%ff",
  "/_ami/ws/v1/sync?access_token=%ff",
  "/mcp?%ff",
  "/api/ops/%ff",
  "/api/services/%ff/start",
  "/..%2f..%2fetc%2fpasswd",
  "/../../etc/passwd",
  "/\u00e9\u00e8",
  "/?access_token=",
  "http://[::1",
  "http://x:99999/",
  "https://evil.example/health",
  "*",
  "",
  "health",
  "mailto:x",
  "/a\u0000b",
  "/a b",
  "/\t",
] as const;

const PATHS = [
  "/",
  "/health",
  "/metrics",
  "/_ami/stats",
  "/mcp",
  "/api/status",
  "/api/ops/status",
  "/api/streams",
  "/_matrix/client/versions",
  "/_matrix/client/v3/login",
  "/_matrix/client/v3/sync",
  "/live/x/index.m3u8",
  "/live/x/whip",
  "/live/x/whep",
  "/_ami/ws/v1/sync",
  "/config.json",
  "/index.html",
] as const;

const METHODS = [
  "GET",
  "POST",
  "PUT",
  "DELETE",
  "OPTIONS",
  "HEAD",
  "PATCH",
  "CONNECT",
  "TRACE",
  "get",
  "G ET",
  "PROPFIND",
  "\u0000",
  "GETGETGETGET",
] as const;
const VERSIONS = [
  "HTTP/1.1",
  "HTTP/1.0",
  "HTTP/2.0",
  "HTTP/9.9",
  "HTTP/1.1 extra",
  "",
  "http/1.1",
  "HTTP/1.x",
] as const;

export interface HostileCase {
  name: string;
  bytes: Buffer;
}

export function hostileCases(seed: number, count: number): HostileCase[] {
  const rnd = prng(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  const out: HostileCase[] = [];
  for (let i = 0; i < count; i++) {
    const kind = int(12);
    const eol = pick(["\r\n", "\r\n", "\r\n", "\n", "\r", "\n\r"]);
    let target: string = rnd() < 0.55 ? pick(TARGETS) : pick(PATHS);
    if (rnd() < 0.2) target += pick(["?", "?x=%ff", "/%ff", "#frag", "?a=1&&&=&", `/${"a".repeat(int(9000))}`]);
    const method = rnd() < 0.8 ? pick(["GET", "POST", "PUT", "OPTIONS"]) : pick(METHODS);
    const version = rnd() < 0.85 ? "HTTP/1.1" : pick(VERSIONS);
    const headers: string[] = [];
    if (rnd() < 0.9)
      headers.push(`Host: ${pick(["127.0.0.1", "localhost", "", "evil.example", "[::1]:1", "a b", "x:99999"])}`);
    if (rnd() < 0.1) headers.push("Host: second.example");
    if (rnd() < 0.3)
      headers.push(
        `Authorization: ${pick(["Bearer", "Bearer x", "Basic Zm9vOmJhcg==", `Bearer ${"t".repeat(int(5000))}`, "Bearer \u0000"])}`,
      );
    if (rnd() < 0.2) headers.push(`Origin: ${pick(["http://evil.example", "null", "http://localhost", "::::"])}`);
    let body = "";
    switch (kind) {
      case 0: // CL + TE: the classic request-smuggling shape
        body = "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
        headers.push(
          `Content-Length: ${int(8)}`,
          `Transfer-Encoding: ${pick(["chunked", " chunked", "chunked, identity", "xchunked", "chunked\u000b"])}`,
        );
        break;
      case 1: // conflicting or malformed Content-Length
        body = '{"a":1}';
        headers.push(
          pick([
            "Content-Length: 7",
            "Content-Length: -1",
            "Content-Length: abc",
            "Content-Length: 99999999999999999999",
            "Content-Length: 7, 8",
            "Content-Length: 0x7",
          ]),
        );
        if (rnd() < 0.5) headers.push("Content-Length: 3");
        break;
      case 2: // broken chunked bodies
        headers.push("Transfer-Encoding: chunked");
        body = pick([
          "zz\r\nabc\r\n0\r\n\r\n",
          "5\r\nab\r\n0\r\n\r\n",
          "ffffffffffffffff\r\n",
          "3;ext=\u0000\r\nabc\r\n0\r\n\r\n",
          "-1\r\n\r\n",
        ]);
        break;
      case 3: // oversized header or many headers
        if (rnd() < 0.5) headers.push(`X-Big: ${"b".repeat(20_000 + int(70_000))}`);
        else for (let h = 0; h < 150 + int(300); h++) headers.push(`X-H${h}: ${h}`);
        break;
      case 4: // NUL bytes, header without a colon, obs-fold, bad header names
        headers.push(
          pick([
            "X-Nul: a\u0000b",
            "NoColonHere",
            "X-Fold: a\r\n b",
            "Bad Header: x",
            ": empty-name",
            "X-\u00ff: y",
            "X-Ctl: \u0001\u0002",
          ]),
        );
        break;
      case 5: // WebSocket upgrade, sound or not
        headers.push("Upgrade: websocket", "Connection: Upgrade", `Sec-WebSocket-Version: ${pick(["13", "8", "x"])}`);
        if (rnd() < 0.7) headers.push(`Sec-WebSocket-Key: ${pick(["dGhlIHNhbXBsZSBub25jZQ==", "short", ""])}`);
        break;
      case 6: // JSON body of the wrong shape or hostile nesting
        body = pick([
          "[".repeat(5_000),
          '{"a":',
          "null",
          '"str"',
          '{"__proto__":{"x":1}}',
          "\u0000\u0001",
          "v=0\r\no=- 0 0 IN IP4 0\r\n",
          "1e999999",
        ]);
        headers.push("Content-Type: application/json", `Content-Length: ${Buffer.byteLength(body)}`);
        break;
      case 7: // Expect: 100-continue and then nothing, or a lie about the length
        headers.push("Expect: 100-continue", `Content-Length: ${10 + int(1000)}`);
        break;
      case 8: // pipelined requests, the second malformed
        headers.push("Content-Length: 0");
        body = `GET ${pick(TARGETS)} HTTP/1.1${eol}Host: x${eol}${eol}`;
        break;
      case 9: // random bytes instead of a request
        out.push({ name: `garbage#${i}`, bytes: Buffer.from(Array.from({ length: 1 + int(400) }, () => int(256))) });
        continue;
      default:
        break;
    }
    if (rnd() < 0.5) headers.push("Connection: close");
    const head = `${method} ${target}${version ? ` ${version}` : ""}${eol}${headers.join(eol)}${eol}${eol}`;
    out.push({ name: `${kind}:${method} ${target.slice(0, 60)}#${i}`, bytes: Buffer.from(head + body, "latin1") });
  }
  return out;
}
