/**
 * Glass-to-glass latency of WHEP in Chromium from an H.264 source with B-frames, which the server re-encodes for
 * WebRTC viewers (protocols/webrtc/video-transcode.ts), next to the same-run baseline: WHEP from the same source
 * without B-frames, passed through. The generator (glass.ts) draws the epoch milliseconds into every frame as
 * black/white blocks, 384x216 at 30 fps, x264 ultrafast zerolatency over RTMP; the B-frame source adds `-bf 3`
 * (fixed B-frames: three frames of reordering delay in the encoder, as any B-frame encoder has). The viewer is
 * headless Chromium playing the path over WHEP into a <video>: for every frame it presents
 * (requestVideoFrameCallback), the page draws it into a canvas, reads the blocks back and takes
 * expectedDisplayTime (epoch) minus the drawn time: what a browser user sees, jitter buffer and renderer included.
 * Frames decoded per second (getStats framesDecoded) are reported next to it. Of the difference to the baseline,
 * about 100 ms is the source's own: x264 holds three frames to code them as B-frames (every output pays that).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Page } from "playwright-core";
import { CHROMIUM, installWhepViewer } from "../../test/e2e/helpers/browser.ts";
import { type BenchResult, cpuTicks, percentile, round, runIfMain } from "../matrix/lib.ts";
import { generator, LAYOUT } from "./glass.ts";
import { MediaChild, waitFor } from "./lib.ts";

const WARMUP_MS = 4000;
const MEASURE_MS = 12000;
const TARGET_MS = 300;

interface Run {
  latencies: number[];
  misread: number;
  fps: number;
  video: string;
}

/** Page side: WHEP into a <video>, and per presented frame the latency read from its blocks. */
async function playAndMeasure(page: Page, whep: string): Promise<Run> {
  await installWhepViewer(page);
  return page.evaluate(
    async ({ whep, layout, warmupMs, measureMs }) => {
      const { W, H, BLOCK, COLS, X0, Y0 } = layout;
      const viewer = await window.amiWhep?.(whep);
      if (!viewer) throw new Error("no WHEP viewer in the page");
      const { pc, video, session } = viewer;

      const canvas = document.createElement("canvas");
      canvas.width = W;
      canvas.height = H;
      const g = canvas.getContext("2d", { willReadFrequently: true }) as CanvasRenderingContext2D;
      /** glass.ts readFrame on RGBA: 42 bits of ms and 6 bits of their popcount. */
      const read = (): number | undefined => {
        const px = g.getImageData(0, 0, W, H).data;
        const b: number[] = [];
        for (let i = 0; i < 48; i++) {
          const x = X0 + (i % COLS) * BLOCK + BLOCK / 2 - 4;
          const y = Y0 + Math.floor(i / COLS) * BLOCK + BLOCK / 2 - 4;
          let sum = 0;
          for (let r = 0; r < 8; r++) for (let c = 0; c < 8; c++) sum += px[((y + r) * W + x + c) * 4] as number;
          b.push(sum / 64 > 128 ? 1 : 0);
        }
        let lo = 0;
        let hi = 0;
        let pop = 0;
        for (let i = 20; i >= 0; i--) lo = lo * 2 + (b[i] as number);
        for (let i = 41; i >= 21; i--) hi = hi * 2 + (b[i] as number);
        for (let i = 47; i >= 42; i--) pop = pop * 2 + (b[i] as number);
        if (b.slice(0, 42).reduce((a, x) => a + x, 0) !== pop) return undefined;
        return hi * 2 ** 21 + lo;
      };
      const decoded = async () => {
        let frames = 0;
        (await pc.getStats()).forEach((r) => {
          if (r.type === "inbound-rtp" && r.kind === "video") frames = r.framesDecoded ?? 0;
        });
        return frames;
      };
      const latencies: number[] = [];
      let misread = 0;
      let from = Number.POSITIVE_INFINITY;
      let until = Number.POSITIVE_INFINITY;
      await new Promise<void>((done) => {
        // A stalled video never calls back: give up after the window plus a margin (the figures then show it).
        setTimeout(done, warmupMs + measureMs + 20000);
        const onFrame = (_now: number, meta: VideoFrameCallbackMetadata) => {
          // On the wall clock the generator stamps with (performance.timeOrigin drifts from it).
          const shown = Date.now() + (meta.expectedDisplayTime - performance.now());
          if (from === Number.POSITIVE_INFINITY) {
            from = shown + warmupMs;
            until = from + measureMs;
          }
          if (shown >= until) return done();
          g.drawImage(video, 0, 0, W, H);
          const ms = read();
          if (ms === undefined || Math.abs(shown - ms) > 60_000) misread++;
          else if (shown >= from) latencies.push(shown - ms);
          video.requestVideoFrameCallback(onFrame);
        };
        video.requestVideoFrameCallback(onFrame);
      });
      // Frames decoded per second over a last window (the measured one has just ended).
      const f0 = await decoded();
      const t0 = performance.now();
      await new Promise((r) => setTimeout(r, 3000));
      const fps = ((await decoded()) - f0) / ((performance.now() - t0) / 1000);
      pc.close();
      video.remove();
      if (session) await fetch(new URL(session, location.href), { method: "DELETE" }).catch(() => {});
      return { latencies, misread, fps, video: "" };
    },
    { whep, layout: LAYOUT, warmupMs: WARMUP_MS, measureMs: MEASURE_MS },
  );
}

async function viaWhep(m: MediaChild, page: Page, path: string, bframes: boolean): Promise<Run> {
  const url = `${m.rtmp}/${path}`;
  const g = generator(url, [...(bframes ? ["-bf", "3"] : []), "-f", "flv", "-flush_packets", "1", url]);
  try {
    await waitFor(`${path} in the hub`, async () => {
      const r = await fetch(`${m.http}/${path}/stream.m3u8`).catch(() => undefined);
      return r?.status === 200;
    });
    process.stderr.write(`whep-bframes: ${path} live, playing in Chromium\n`);
    const playing = playAndMeasure(page, `${m.http}/${path}/whep`);
    // Mid-window: what the viewer gets (status), and the re-encoder's CPU over 8 s while it plays.
    await new Promise((r) => setTimeout(r, WARMUP_MS));
    const status = await (await fetch(`${m.http}/api/streams/${path}`)).json().catch(() => ({}));
    const pid: number | undefined = status?.webrtc?.reencoder?.pid ?? undefined;
    let cores: number | null = null;
    if (pid) {
      const t0 = cpuTicks(pid);
      await new Promise((r) => setTimeout(r, 8000));
      cores = (cpuTicks(pid) - t0) / 100 / 8;
    }
    const run = await playing;
    process.stderr.write(`whep-bframes: ${path} measured (${run.latencies.length} frames)\n`);
    run.video = `${status?.webrtc?.video ?? "?"}${cores === null ? "" : `, re-encoder ffmpeg ${round(cores * 100, 0)}% of a core at ${status?.webrtc?.reencoder?.bitrateKbps} kb/s`}`;
    return run;
  } finally {
    await g.stop();
  }
}

const describe = (r: Run) =>
  `${r.latencies.length} frames, ${r.misread} unreadable, ${round(r.fps, 1)} fps decoded, video ${r.video}`;

export async function run(): Promise<BenchResult[]> {
  const profile = mkdtempSync(join(tmpdir(), "ami-bench-chromium-"));
  const m = await MediaChild.start();
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
    viewport: { width: 640, height: 360 },
  });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto(`${m.http}/`);
    const base = await viaWhep(m, page, "live/whep-nobf", false);
    const bf = await viaWhep(m, page, "live/whep-bf", true);
    const baseline = `same run, WHEP passthrough from the same source without B-frames: p50 ${round(percentile(base.latencies, 50), 0)} ms, p95 ${round(percentile(base.latencies, 95), 0)} ms (${describe(base)})`;
    const target = `≤ ${TARGET_MS} ms`;
    const name = "glass-to-glass RTMP (B-frames) -> re-encode -> WHEP in Chromium (latency at display)";
    const p50 = percentile(bf.latencies, 50);
    const p95 = percentile(bf.latencies, 95);
    return [
      {
        bench: name,
        metric: "p50",
        value: round(p50, 0),
        unit: `ms (${describe(bf)})`,
        baseline,
        target,
        met: p50 <= TARGET_MS,
      },
      {
        bench: name,
        metric: "p95",
        value: round(p95, 0),
        unit: "ms",
        baseline: "(same)",
        target,
        met: p95 <= TARGET_MS,
      },
    ];
  } finally {
    await context.close().catch(() => {});
    await m.stop();
    rmSync(profile, { recursive: true, force: true });
  }
}

await runIfMain(import.meta, run);
