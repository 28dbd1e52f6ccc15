/**
 * Viewer mesh offload (issue 15): N headless Chromium viewers of one live stream (ffmpeg testsrc2 320x240 25 fps,
 * 1 s GOP, over RTMP) play the player page for a measuring window, three times in the same run, each on a fresh
 * server: HTTP only with the player as shipped (LL-HLS), HTTP only with the mesh player's hls.js settings (the
 * baseline the savings are computed against: the same requests but for the peers), and with media.mesh on.
 * Figures: the origin's bytes per second for the stream (all HTTP answers for the path: playlists, init,
 * segments, parts, mesh.json), the viewers' offload ratio (segment bytes from peers / all segment bytes, as the
 * players report them to the server) and stalls (a "waiting" of more than 1 s). `P2P_VIEWERS` sets N (default 10).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { configSchema } from "../../src/config.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { launchBrowser } from "../../test/e2e/helpers/browser.ts";
import { publish, until } from "../../test/e2e/helpers/media-tools.ts";
import { type BenchResult, round, runIfMain } from "../matrix/lib.ts";

const PATH = "live/offload";
const VIEWERS = Number(process.env.P2P_VIEWERS ?? 10);
const WARMUP_MS = 10_000;
const MEASURE_MS = 30_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Phase {
  originBytesPerS: number;
  peerBytes: number;
  httpBytes: number;
  stalls: number;
}

/**
 * "mesh": media.mesh on. "http": the mesh player's hls.js settings (no LL-HLS, three-segment buffer) with a stand-in
 * for mesh.js that has no peers, so every byte comes from the origin. "http-ll": media.mesh off, the player as
 * shipped (LL-HLS).
 */
type Mode = "mesh" | "http" | "http-ll";

async function phase(mode: Mode): Promise<Phase> {
  const mesh = mode !== "http-ll";
  const dir = mkdtempSync(join(tmpdir(), "ami-bench-mesh-"));
  const media = {
    rtmpPort: 0,
    httpPort: 0,
    srtPort: 0,
    rtsp: { enabled: false },
    webrtc: { enabled: false },
    mesh: { enabled: mesh, maxViewersPerStream: 1000 },
  };
  const m = await MediaServer.start(configSchema.parse({ media }).media, silentLogger, { dataDir: dir });
  const pub = publish(`${m.rtmpUrl}/${PATH}`, 3600);
  const browser = await launchBrowser([
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
  ]);
  try {
    await until("the stream to go live", async () => m.outputs.get(PATH)?.packager.timeline.hasListed());
    const pages: Page[] = [];
    for (let i = 0; i < VIEWERS; i++) {
      // A context per viewer: its own HTTP cache (a shared one would answer the others' segment requests).
      const p = await (await browser.newContext({ viewport: { width: 320, height: 240 } })).newPage();
      if (mode === "http")
        await p.addInitScript(() => {
          // mesh.js's assignment of window.AmiMesh is ignored: the player gets this loader-less stand-in.
          class NoPeers {
            static supported() {
              return true;
            }
            loader(base: unknown) {
              return base;
            }
            close() {}
          }
          Object.defineProperty(window, "AmiMesh", { get: () => NoPeers, set: () => {} });
        });
      await p.addInitScript(() => {
        const w = window as unknown as { amiStalls: number };
        w.amiStalls = 0;
        let since = 0;
        document.addEventListener(
          "waiting",
          () => {
            since = performance.now();
          },
          true,
        );
        document.addEventListener(
          "playing",
          () => {
            if (since && performance.now() - since > 1000) w.amiStalls++;
            since = 0;
          },
          true,
        );
      });
      await p.goto(`${m.httpUrl}/${PATH}/`);
      pages.push(p);
      // Viewers arrive one after the other, as they do.
      await sleep(1000);
    }
    await sleep(WARMUP_MS);
    const out = m.outputs.get(PATH);
    const origin0 = out?.httpBytesOut ?? 0;
    const s0 = m.mesh?.status(PATH);
    const stalls = () =>
      Promise.all(pages.map((p) => p.evaluate(() => (window as unknown as { amiStalls: number }).amiStalls)));
    const st0 = (await stalls()).reduce((a, b) => a + b, 0);
    await sleep(MEASURE_MS);
    // The players report every 2 s: wait for one more report before reading the swarm's figures.
    await sleep(2500);
    const s1 = m.mesh?.status(PATH);
    const st1 = (await stalls()).reduce((a, b) => a + b, 0);
    return {
      originBytesPerS: ((out?.httpBytesOut ?? 0) - origin0) / (MEASURE_MS / 1000),
      peerBytes: (s1?.peerBytes ?? 0) - (s0?.peerBytes ?? 0),
      httpBytes: (s1?.httpBytes ?? 0) - (s0?.httpBytes ?? 0),
      stalls: st1 - st0,
    };
  } finally {
    await browser.close().catch(() => {});
    pub.proc.kill("SIGKILL");
    await m.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<BenchResult[]> {
  const ll = await phase("http-ll");
  const base = await phase("http");
  const mesh = await phase("mesh");
  const ratio = mesh.peerBytes + mesh.httpBytes > 0 ? mesh.peerBytes / (mesh.peerBytes + mesh.httpBytes) : 0;
  const kib = (b: number) => round(b / 1024, 1);
  const baseline = `HTTP only, same ${VIEWERS} viewers, same hls.js settings: origin ${kib(base.originBytesPerS)} KiB/s, ${base.stalls} stall(s); shipped LL-HLS player: ${kib(ll.originBytesPerS)} KiB/s, ${ll.stalls} stall(s)`;
  const row = (metric: string, value: number, unit: string): BenchResult => ({
    bench: "media-p2p-offload",
    metric,
    value,
    unit,
    baseline,
    target: "",
    met: null,
  });
  return [
    row(`viewer offload ratio, ${VIEWERS} Chromium viewers`, round(ratio, 3), "peer / all segment bytes"),
    row(`origin bytes/s with the mesh, ${VIEWERS} viewers`, kib(mesh.originBytesPerS), "KiB/s"),
    row(
      "origin bytes saved vs HTTP only",
      round(base.originBytesPerS > 0 ? 1 - mesh.originBytesPerS / base.originBytesPerS : 0, 3),
      `vs the same settings over HTTP (stalls > 1 s with the mesh: ${mesh.stalls})`,
    ),
  ];
}

await runIfMain(import.meta, run);
