/**
 * The HLS viewer mesh (media.mesh) in real Chromium: ffmpeg publishes over RTMP; viewer A plays the player page,
 * viewer B joins and gets segments from A over a WebRTC data channel (its own counters and the server's offload
 * ratio say so), then A leaves and B plays on over HTTP without a stall. A viewer that serves corrupted segments
 * is caught by the SHA-256 of mesh.json: the segment is refused, the peer reported, and the viewer plays on.
 * Hostile signalling (garbage, binary, oversized, a flood, unknown paths) closes only the offending socket.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { Browser, Page } from "playwright-core";
import { WebSocket } from "ws";
import { configSchema } from "../../src/config.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { CHROMIUM, launchBrowser } from "./helpers/browser.ts";
import { publish, until } from "./helpers/media-tools.ts";

const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
const opts = {
  skip: !hasFfmpeg ? "ffmpeg is not installed" : !existsSync(CHROMIUM) ? `${CHROMIUM} is missing` : false,
};
const PATH = "live/mesh";
const dir = mkdtempSync(join(tmpdir(), "ami-media-mesh-"));
let m: MediaServer;
let browser: Browser;
let publisher: ReturnType<typeof publish>;
const pageErrors: string[] = [];

interface MeshStats {
  peerBytes: number;
  httpBytes: number;
  rejected: number;
  servedBytes: number;
  peerSegments: number;
  httpSegments: number;
}
declare global {
  interface Window {
    amiMesh?: {
      stats: MeshStats;
      store: Map<string, ArrayBuffer>;
      serveBytes(key: string): ArrayBuffer | undefined;
      ws: { readyState: number };
    };
    amiWaits?: number[];
  }
}

before(async () => {
  if (opts.skip) return;
  const media = {
    rtmpPort: 0,
    httpPort: 0,
    srtPort: 0,
    rtsp: { enabled: false },
    webrtc: { enabled: false },
    mesh: { enabled: true, peerWaitMs: 1500 },
  };
  m = await MediaServer.start(configSchema.parse({ media }).media, silentLogger, { dataDir: dir });
  publisher = publish(`${m.rtmpUrl}/${PATH}`, 120);
  await until("the stream to go live", async () => m.hub.get(PATH));
  // Loopback candidates (the viewers share this machine) and plain host addresses instead of mDNS names.
  browser = await launchBrowser([
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
  ]);
});

after(async () => {
  await browser?.close().catch(() => {});
  publisher?.proc.kill("SIGKILL");
  await m?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function viewer(): Promise<Page> {
  // A context per viewer: its own HTTP cache, as separate browsers would have.
  const page = await (await browser.newContext({ viewport: { width: 320, height: 240 } })).newPage();
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  await page.goto(`${m.httpUrl}/${PATH}/`);
  // Every "waiting" → "playing" gap, in ms: a stall shows up as a long one.
  await page.evaluate(() => {
    const v = document.querySelector("video") as HTMLVideoElement;
    window.amiWaits = [];
    let since = 0;
    v.addEventListener("waiting", () => {
      since = performance.now();
    });
    v.addEventListener("playing", () => {
      if (since) window.amiWaits?.push(performance.now() - since);
      since = 0;
    });
  });
  await until(
    "the viewer to play",
    () => page.evaluate(() => (document.querySelector("video")?.currentTime ?? 0) > 1),
    30000,
  );
  return page;
}

const stats = (p: Page) => p.evaluate(() => window.amiMesh?.stats as MeshStats);
const currentTime = (p: Page) => p.evaluate(() => document.querySelector("video")?.currentTime ?? 0);

let a: Page;
let b: Page;

test("the second viewer gets segments from the first over WebRTC; the server sees the offload", opts, async () => {
  a = await viewer();
  b = await viewer();
  const got = await until("B to get a segment from a peer", async () => {
    const s = await stats(b);
    return s.peerBytes > 0 ? s : undefined;
  });
  assert.ok(got.peerSegments > 0);
  assert.ok((await stats(a)).servedBytes > 0, "A served what B got");
  const mesh = await until("the server's offload ratio", async () => {
    const s = m.mesh?.status(PATH);
    return s && s.offloadRatio > 0 ? s : undefined;
  });
  assert.equal(mesh.viewers, 2);
  assert.ok(mesh.peerBytes > 0);
  const listed = m.statuses().find((s) => s.path === PATH);
  assert.ok((listed?.mesh?.offloadRatio ?? 0) > 0, "stream status carries the mesh figures");
});

test("the second viewer plays on without a stall when the first leaves", opts, async () => {
  // Only waits from here on count (B's start-up is not what is measured).
  await b.evaluate(() => {
    window.amiWaits = [];
  });
  await a.context().close();
  const t0 = await currentTime(b);
  const http0 = (await stats(b)).httpSegments;
  await new Promise((r) => setTimeout(r, 8000));
  const t1 = await currentTime(b);
  assert.ok(t1 > t0 + 5, `currentTime advanced ${t0} → ${t1}`);
  assert.ok((await stats(b)).httpSegments > http0, "B loads over HTTP now");
  const waits = await b.evaluate(() => window.amiWaits ?? []);
  assert.ok(Math.max(0, ...waits) < 1500, `no long waiting: ${waits.map(Math.round).join(", ")}`);
  await until("the server to see A gone", async () => m.mesh?.status(PATH)?.viewers === 1);
});

test("a peer serving corrupted segments is refused by hash and reported; the viewer plays on", opts, async () => {
  const evil = await viewer();
  await evil.evaluate(() => {
    const mesh = window.amiMesh;
    if (!mesh) throw new Error("no mesh");
    mesh.serveBytes = (key) => {
      const good = mesh.store.get(key);
      if (!good) return undefined;
      const bad = new Uint8Array(good.slice(0));
      bad[bad.length >> 1] ^= 0xff;
      return bad.buffer;
    };
  });
  const c = await viewer();
  await until("C to refuse a corrupted segment", async () => (await stats(c)).rejected > 0);
  const t0 = await currentTime(c);
  await until("C to play on", async () => (await currentTime(c)) > t0 + 2, 15000);
  await until("the server to count the refusal", async () => (m.mesh?.status(PATH)?.rejected ?? 0) > 0);
  // Everything C played from peers passed the hash (B's honest segments).
  assert.equal((await stats(c)).rejected, 1, "the lying peer is dropped after its first bad segment");
  await evil.context().close();
  await c.context().close();
});

function socket(path = PATH): WebSocket {
  return new WebSocket(`${m.httpUrl.replace("http", "ws")}/_ami/mesh?path=${encodeURIComponent(path)}`);
}

function closed(ws: WebSocket): Promise<number> {
  return new Promise((r) => ws.once("close", (code) => r(code)));
}

async function opened(ws: WebSocket): Promise<void> {
  await new Promise((r, j) => {
    ws.once("open", r);
    ws.once("error", j);
  });
}

test("hostile signalling closes only the offending socket", opts, async () => {
  const abuse0 = m.mesh?.closedForAbuse ?? 0;
  const cases: [string, (ws: WebSocket) => void, number][] = [
    ["garbage", (ws) => ws.send("{not json"), 4400],
    ["unknown type", (ws) => ws.send('{"t":"shutdown"}'), 4400],
    // Only an SDP or an ICE candidate is relayed (a payload nested thousands deep overflowed the relay's stringify).
    ["bad signal payload", (ws) => ws.send('{"t":"signal","to":"0123456789abcdef","data":{"sdp":"x"}}'), 4400],
    ["binary", (ws) => ws.send(Buffer.from([1, 2, 3])), 1003],
    ["oversized", (ws) => ws.send(`{"t":"stats","x":"${"a".repeat(20_000)}"}`), 1009],
    ["flood", (ws) => Array.from({ length: 200 }, () => ws.send('{"t":"stats","peer":1,"http":1,"rejected":0}')), 4429],
  ];
  for (const [name, act, code] of cases) {
    const ws = socket();
    await opened(ws);
    const done = closed(ws);
    act(ws);
    assert.equal(await done, code, name);
  }
  // A signal for a viewer that is not linked is dropped, not relayed, and the socket stays.
  const ws = socket();
  await opened(ws);
  ws.send(JSON.stringify({ t: "signal", to: "0123456789abcdef", data: { sdp: { type: "offer", sdp: "v=0" } } }));
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(ws.readyState, WebSocket.OPEN);
  ws.close();
  for (const p of ["live/none", "../etc"]) {
    const s = socket(p);
    const status = await new Promise<number>((r) =>
      s.once("unexpected-response", (_req, res) => r(res.statusCode ?? 0)),
    );
    assert.equal(status, 404, p);
  }
  assert.ok((m.mesh?.closedForAbuse ?? 0) >= abuse0 + 6);
  // The honest viewer is still in its swarm and playing; the server answers.
  assert.equal(await b.evaluate(() => window.amiMesh?.ws.readyState), 1);
  const t0 = await currentTime(b);
  await until("B to play on", async () => (await currentTime(b)) > t0 + 1, 10000);
  assert.equal((await fetch(`${m.httpUrl}/health`)).status, 200);
  assert.deepEqual(pageErrors, []);
});
