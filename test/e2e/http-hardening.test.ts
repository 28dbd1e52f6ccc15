/**
 * Every listener on the HTTP kit, as real processes, against hostile raw requests: malformed targets, a
 * WebSocket upgrade to `//[`, `%ff` paths, garbage request lines, oversized and slow headers. Each answers
 * 4xx (400/404/408/431 as fits), never 5xx, stays up and serves a normal request afterwards. MCP HTTP also
 * refuses a foreign Host or Origin (403) and a malformed target before the token (400).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { binEntry, cli, freePort, tempHome, testServiceHome, until } from "../../src/test/cli.ts";
import { mcpInitialize, startMcpHttp } from "../../src/test/mcp.ts";
import { headDone, sendRaw, statusOf } from "../../src/test/raw-http.ts";
import { ChildHomeserver } from "./helpers/homeserver.ts";

/** Sends `text` on a fresh socket; the status code of the first response line, or 0 when none came. */
async function rawStatus(port: number, text: string | string[], waitMs = 5_000): Promise<number> {
  return statusOf(await sendRaw(port, text, { waitMs, until: headDone }));
}

const get = (target: string, host = "127.0.0.1", extra = "") =>
  `GET ${target} HTTP/1.1\r\nHost: ${host}\r\n${extra}Connection: close\r\n\r\n`;
const wsUpgrade = (target: string) =>
  get(
    target,
    "127.0.0.1",
    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
  ).replace("Connection: close\r\n", "");

interface Probe {
  name: string;
  text: string | string[];
  /** Exact status, or a predicate. */
  want: number | ((s: number) => boolean);
}

const clientError = (s: number) => s >= 400 && s < 500;

/** The hostile requests every listener must survive; `pathExtra` adds listener-specific `%ff` paths. */
function probes(pathExtra: string[] = []): Probe[] {
  return [
    { name: "GET //[", text: get("//["), want: clientError },
    { name: "GET //x:99999", text: get("//x:99999"), want: clientError },
    { name: "absolute-form http://[", text: get("http://["), want: 400 },
    { name: "target without a slash", text: get("x"), want: 400 },
    { name: "WebSocket upgrade to //[", text: wsUpgrade("//["), want: clientError },
    { name: "WebSocket upgrade to http://[", text: wsUpgrade("http://["), want: 400 },
    { name: "GET /%ff", text: get("/%ff"), want: clientError },
    ...pathExtra.map((p) => ({ name: `GET ${p}`, text: get(p), want: clientError })),
    { name: "garbage request line", text: "GARBAGE\r\n\r\n", want: 400 },
    { name: "binary request line", text: "\x00\x01\x02 / HTTP/1.1\r\n\r\n", want: 400 },
    { name: "oversized headers", text: get("/", "127.0.0.1", `X-Big: ${"a".repeat(64 * 1024)}\r\n`), want: 431 },
  ];
}

async function survives(name: string, port: number, list: Probe[], normal: () => Promise<number>): Promise<void> {
  for (const p of list) {
    const s = await rawStatus(port, p.text);
    const ok = typeof p.want === "number" ? s === p.want : p.want(s);
    assert.ok(ok, `${name}: ${p.name} answered ${s}`);
    assert.ok(s < 500, `${name}: ${p.name} answered ${s}`);
  }
  assert.equal(await normal(), 200, `${name}: a normal request is served after the probes`);
}

/** Headers that never finish: cut off by the header timeout (15 s) with 408. */
async function slowHeaders(port: number): Promise<number> {
  return rawStatus(port, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1\r\n", 25_000);
}

// Each listener waits out its 15 s header timeout once (slowHeaders): the listeners are probed side by side, so the
// file takes one timeout, not four.
describe("every HTTP listener", { concurrency: true }, () => {
  describe("homeserver", () => {
    let hs: ChildHomeserver;
    before(async () => {
      hs = await ChildHomeserver.start();
    });
    after(() => hs.dispose());

    test("hostile requests get 4xx, never 5xx; the process stays up", async () => {
      const port = Number(new URL(hs.url).port);
      const versions = async () => (await fetch(`${hs.url}/_matrix/client/versions`)).status;
      await survives(
        "homeserver",
        port,
        probes(["/_matrix/client/v3/rooms/%ff/state", "/_ami/ws/v1/sync?x=%ff"]),
        versions,
      );
      assert.equal(await rawStatus(port, wsUpgrade("/_ami/ws/v1/nope")), 404);
      assert.equal(await slowHeaders(port), 408);
      assert.ok(hs.running, "homeserver still running");
      assert.equal(await versions(), 200);
      assert.deepEqual(hs.errorLines(), [], "no internal errors logged");
    });
  });

  describe("control API, MCP HTTP and web server", { concurrency: true }, () => {
    const children: ChildProcess[] = [];
    const svcHome = testServiceHome();
    after(async () => {
      for (const c of children) c.kill("SIGTERM");
      await (await svcHome).cleanup();
    });

    test("control API: hostile requests, rebinding, %ff names", async () => {
      const h = await svcHome;
      const up = await cli(["up"], { env: h.env });
      assert.equal(up.code, 0, up.stderr);
      const info = JSON.parse(readFileSync(join(h.home, "run", "control.json"), "utf8"));
      const port = Number(new URL(info.url).port);
      const token = readFileSync(join(h.home, "run", "control.token"), "utf8").trim();
      const auth = `Authorization: Bearer ${token}\r\n`;
      const status = async () =>
        (await fetch(`http://127.0.0.1:${port}/api/status`, { headers: { authorization: `Bearer ${token}` } })).status;
      await survives("control API", port, probes(), status);
      const post = (target: string, headers: string) =>
        `POST ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}Content-Length: 0\r\nConnection: close\r\n\r\n`;
      assert.equal(await rawStatus(port, post("/api/services/%ff/start", auth)), 400);
      assert.equal(await rawStatus(port, post("/api/ops/%ff", auth)), 400);
      assert.equal(await rawStatus(port, get("/api/status", "evil.example", auth)), 403);
      assert.equal(await rawStatus(port, post("/api/shutdown", `${auth}Origin: http://evil.example\r\n`)), 403);
      assert.equal(await rawStatus(port, get("/api/status")), 401);
      assert.equal(await slowHeaders(port), 408);
      assert.equal(await status(), 200);
    });

    test("MCP HTTP: Host/Origin and token before anything; malformed targets 400; stays up", async () => {
      const token = "m".repeat(32);
      const h = tempHome();
      const { child, url } = await startMcpHttp({ env: h.env, token });
      children.push(child);
      const port = Number(new URL(url).port);
      const auth = `Authorization: Bearer ${token}\r\n`;
      const initialize = async () => (await mcpInitialize(url, token)).status;
      await survives("MCP HTTP", port, probes(), initialize);
      assert.equal(await rawStatus(port, get("/mcp", "evil.example", auth)), 403, "foreign Host");
      assert.equal(await rawStatus(port, get("/mcp", "127.0.0.1", `${auth}Origin: http://evil.example\r\n`)), 403);
      assert.equal(await rawStatus(port, get("/mcp")), 401, "no token");
      assert.equal(await rawStatus(port, get("http://[")), 400, "malformed target before the token");
      assert.equal(await rawStatus(port, get("/elsewhere", "127.0.0.1", auth)), 404);
      assert.equal(await slowHeaders(port), 408);
      assert.equal(child.exitCode, null, "still running");
      assert.equal(await initialize(), 200);
      h.cleanup().catch(() => {});
    });

    test("web server (ami-streams serve web): hostile requests, bad Host header", async () => {
      const port = await freePort();
      // A wildcard homeserver address: /config.json then reads the page's Host header (client input).
      const h = tempHome({ web: { port }, matrix: { host: "0.0.0.0", port: 1 } });
      const child = spawn(process.execPath, [binEntry, "serve", "web"], { env: h.env, stdio: "ignore" });
      children.push(child);
      const health = async () => (await fetch(`http://127.0.0.1:${port}/health`)).status;
      await until("web listening", () => health().catch(() => false), 60_000);
      await survives("web", port, probes(["/assets/%ff%fe", "/%2e%2e/%2e%2e/etc/passwd"]), health);
      assert.equal(await rawStatus(port, get("/config.json", "[")), 200, "a malformed Host falls back to loopback");
      assert.equal(await slowHeaders(port), 408);
      assert.equal(child.exitCode, null, "still running");
      assert.equal(await health(), 200);
      h.cleanup().catch(() => {});
    });
  });
});
