/**
 * Every HTTP listener of a running `ami-streams up` (homeserver with its WebSocket upgrade, media HTTP with
 * WHIP/WHEP, web client, control API, backup, CDN edge, edge functions) and `ami-streams mcp --transport http`, under seeded hostile input:
 * 1,250 raw requests (malformed targets, percent-encoding errors, `//host:badport`, bare LF, CL+TE smuggling
 * shapes, oversized headers, NUL bytes, junk upgrades, garbage), slow headers, slow bodies, idle keep-alive and
 * half-open sockets. Never a 5xx, no process exits, no restart, and a normal client is served throughout.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { connect, type Socket } from "node:net";
import { after, before, test } from "node:test";
import { cli, freePort, json, tempHome } from "../../src/test/cli.ts";
import { mcpInitialize, startMcpHttp } from "../../src/test/mcp.ts";
import { headDone, sendRaw, statusesOf } from "../../src/test/raw-http.ts";
import { hostileCases } from "./helpers/hostile-http.ts";

const CASES_PER_LISTENER = 250;
const CONCURRENCY = 16;

interface Listener {
  name: string;
  port: number;
  /** A request a normal client makes; it must succeed throughout. */
  probe: () => Promise<Response>;
}

const ports = {
  matrix: await freePort(),
  media: await freePort(),
  rtmp: await freePort(),
  srt: await freePort(),
  rtsp: await freePort(),
  web: await freePort(),
  control: await freePort(),
  mcp: await freePort(),
  backup: await freePort(),
  cdn: await freePort(),
  edge: await freePort(),
  p2p: await freePort(),
  p2pPeer: await freePort(),
  p2pTracker: await freePort(),
};
const h = tempHome({
  matrix: { port: ports.matrix },
  media: {
    httpPort: ports.media,
    rtmpPort: ports.rtmp,
    srtPort: ports.srt,
    rtsp: { port: ports.rtsp },
    // The viewer mesh's WebSocket (/_ami/mesh) takes the media listener's upgrades: attacked with the rest.
    mesh: { enabled: true },
  },
  web: { port: ports.web },
  control: { port: ports.control },
  // The listeners the backup, CDN edge and edge-function services add (shared HTTP kit, attacked like the rest).
  backup: { schedule: "1d", port: ports.backup },
  cdn: { enabled: true, port: ports.cdn, origin: `http://127.0.0.1:${ports.web}` },
  edge: { enabled: true, port: ports.edge },
  // The P2P node: its control API, its built-in tracker (an announce parser open to anyone) and its BitTorrent peer
  // port (HTTP garbage is garbage to a peer wire too); the DHT's UDP port has its own test (src/p2p/dht/hostile.test.ts).
  p2p: {
    enabled: true,
    apiPort: ports.p2p,
    port: ports.p2pPeer,
    tracker: { enabled: true, port: ports.p2pTracker },
  },
});
const mcpToken = "m".repeat(40);
let mcp: ChildProcess;
let listeners: Listener[] = [];
let before_: Record<string, { pid: number; restarts: number; state: string }> = {};

const services = async () => {
  const s = json<{ services: { name: string; pid: number; restarts: number; state: string }[] }>(
    await cli(["status", "--json"], { env: h.env }),
  );
  return Object.fromEntries(s.services.filter((x) => x.state !== "disabled").map((x) => [x.name, x]));
};

before(async () => {
  const up = await cli(["up"], { env: h.env, timeoutMs: 180_000 });
  assert.equal(up.code, 0, up.stderr + up.stdout);
  mcp = (await startMcpHttp({ env: h.env, token: mcpToken, port: ports.mcp })).child;
  const token = (await import("node:fs")).readFileSync(`${h.home}/run/control.token`, "utf8").trim();
  const base = (p: number) => `http://127.0.0.1:${p}`;
  listeners = [
    { name: "homeserver", port: ports.matrix, probe: () => fetch(`${base(ports.matrix)}/_matrix/client/versions`) },
    { name: "media", port: ports.media, probe: () => fetch(`${base(ports.media)}/health`) },
    { name: "web", port: ports.web, probe: () => fetch(`${base(ports.web)}/health`) },
    {
      name: "control",
      port: ports.control,
      probe: () => fetch(`${base(ports.control)}/api/status`, { headers: { authorization: `Bearer ${token}` } }),
    },
    { name: "backup", port: ports.backup, probe: () => fetch(`${base(ports.backup)}/health`) },
    { name: "cdn", port: ports.cdn, probe: () => fetch(`${base(ports.cdn)}/health`) },
    { name: "edge", port: ports.edge, probe: () => fetch(`${base(ports.edge)}/health`) },
    { name: "p2p", port: ports.p2p, probe: () => fetch(`${base(ports.p2p)}/health`) },
    { name: "p2p tracker", port: ports.p2pTracker, probe: () => fetch(`${base(ports.p2p)}/health`) },
    { name: "p2p peer port", port: ports.p2pPeer, probe: () => fetch(`${base(ports.p2p)}/health`) },
    {
      name: "mcp",
      port: ports.mcp,
      probe: () => mcpInitialize(`${base(ports.mcp)}/mcp`, mcpToken),
    },
  ];
  for (const l of listeners) assert.equal((await l.probe()).status, 200, `${l.name} probe before the attack`);
  before_ = await services();
  for (const n of ["matrix", "media", "web"]) assert.equal(before_[n]?.state, "running", n);
});

after(async () => {
  mcp?.kill("SIGTERM");
  await h.cleanup();
});

/** Probes every listener every 200 ms while `work` runs; returns the failures. */
async function whileProbing(work: () => Promise<void>): Promise<string[]> {
  const failures: string[] = [];
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      for (const l of listeners) {
        try {
          const r = await l.probe();
          await r.arrayBuffer();
          if (r.status !== 200) failures.push(`${l.name}: probe ${r.status}`);
        } catch (e) {
          failures.push(`${l.name}: probe failed: ${(e as Error).message}`);
        }
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  try {
    await work();
  } finally {
    stop = true;
    await loop;
  }
  return failures;
}

async function pool<T>(items: T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (i < items.length) await fn(items[i++]);
    }),
  );
}

async function assertNoRestarts(): Promise<void> {
  const now = await services();
  for (const [name, s] of Object.entries(before_)) {
    assert.equal(now[name]?.pid, s.pid, `${name} was restarted (pid changed)`);
    assert.equal(now[name]?.restarts, s.restarts, `${name} restart count changed`);
  }
  assert.equal(mcp.exitCode, null, "the MCP HTTP server exited");
}

test("1,250 seeded hostile requests: no 5xx, no exit, no restart, normal clients served throughout", {
  timeout: 300_000,
}, async () => {
  const fives: string[] = [];
  let answered = 0;
  const failures = await whileProbing(() =>
    pool(
      listeners.flatMap((l, li) => hostileCases(0x5eed + li, CASES_PER_LISTENER).map((c) => ({ l, c }))),
      CONCURRENCY,
      async ({ l, c }) => {
        const answer = await sendRaw(l.port, c.bytes, { waitMs: 1_000, halfClose: c.name.startsWith("7:") });
        const codes = statusesOf(answer);
        if (codes.length) answered++;
        for (const code of codes) if (code >= 500) fives.push(`${l.name} ${code} ${c.name}`);
      },
    ),
  );
  assert.deepEqual(fives, [], "5xx answers");
  assert.deepEqual(failures, [], "a normal client was not served");
  assert.ok(answered > CASES_PER_LISTENER, `only ${answered} cases got any answer`);
  await assertNoRestarts();
});

test("the mesh WebSocket refuses unknown, escaping and malformed stream paths before upgrading", async () => {
  const upgrade = (target: string, key = "dGhlIHNhbXBsZSBub25jZQ==") =>
    `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\nOrigin: http://evil.example\r\n\r\n`;
  const cases: [string, string][] = [
    ["no path", upgrade("/_ami/mesh")],
    ["no stream", upgrade("/_ami/mesh?path=live/none")],
    ["escaping path", upgrade("/_ami/mesh?path=..%2F..%2Fetc%2Fpasswd")],
    ["NUL in path", upgrade("/_ami/mesh?path=live%00x")],
    ["huge path", upgrade(`/_ami/mesh?path=${"a/".repeat(3000)}`)],
    ["repeated path", upgrade("/_ami/mesh?path=a&path=b")],
    ["bad key", upgrade("/_ami/mesh?path=live/none", "short")],
  ];
  for (const [name, bytes] of cases) {
    const codes = statusesOf(await sendRaw(ports.media, bytes, { waitMs: 1_000, until: headDone }));
    assert.ok(codes.length > 0 && codes.every((c) => c >= 400 && c < 500), `${name}: ${codes}`);
    assert.ok(!codes.includes(101), `${name} was upgraded`);
  }
  await assertNoRestarts();
});

test("slow headers, slow bodies, idle keep-alive and half-open sockets hold nobody else up", {
  timeout: 180_000,
}, async () => {
  const held: Socket[] = [];
  const open = (port: number) =>
    new Promise<Socket>((resolve) => {
      const s = connect(port, "127.0.0.1", () => resolve(s));
      s.on("error", () => resolve(s));
      held.push(s);
    });
  const failures = await whileProbing(async () => {
    for (const l of listeners) {
      // 100 idle connections that never send a byte, per listener.
      await Promise.all(Array.from({ length: 100 }, () => open(l.port)));
      // Slow headers: one byte at a time.
      const slow = await open(l.port);
      const head = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
      for (const ch of head) {
        slow.write(ch);
        await new Promise((r) => setTimeout(r, 5));
      }
      // Slow body: a declared body that never arrives.
      const body = await open(l.port);
      body.write(
        "POST /api/ops/status HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
      );
      // Half-open: the request is sent and our side is shut for writing before the answer.
      const half = await open(l.port);
      half.end("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
      // Idle keep-alive after one good request.
      const ka = await open(l.port);
      ka.write("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    }
    await new Promise((r) => setTimeout(r, 3_000));
  });
  for (const s of held) s.destroy();
  assert.deepEqual(failures, [], "a normal client was not served while sockets were held");
  await assertNoRestarts();
});
