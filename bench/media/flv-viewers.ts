/**
 * HTTP-FLV fan-out: 100 viewers on loopback each stream `/<path>.flv` of the 1080p30 6 Mb/s clip (published in a
 * loop) for 20 s; figures are the media process's CPU (cores) and peak RSS, and the bytes delivered against
 * what 100 real-time viewers should get. Baseline, same run: nginx with Debian's RTMP module (one worker, as our
 * service is one process) fanning the same publish out to the same number of RTMP players (the classic
 * nginx-rtmp relay; nginx-http-flv is not packaged), read by the same client code. Target ≤ 1.5× nginx's CPU.
 * BENCH_FLV_MERGE_MS sets the service's media.httpFlvMergeMs (default 50; 0 writes each frame as it arrives).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RtmpPublisher } from "../../test/e2e/helpers/rtmp-publisher.ts";
import { type BenchResult, mb, round, rssOf, runIfMain } from "../matrix/lib.ts";
import { clip1080p, MediaChild, nginx, publishLoop, treeCores, treeTicks, waitFor } from "./lib.ts";

const VIEWERS = 100;
const SECONDS = 20;
const RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

interface Load {
  cores: number;
  peakRss: number;
  bytesPerSec: number;
}

/** One HTTP-FLV viewer: counts bytes until `signal` aborts. */
function flvViewer(url: string, count: (n: number) => void, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const req = request(url, { signal }, (res) => {
      res.on("data", (c: Buffer) => count(c.length));
      res.on("close", resolve);
      res.on("error", resolve);
    });
    req.on("error", () => resolve());
    req.end();
  });
}

/** `start(count, signal)` opens one viewer; the server's process `pid` is measured while all of them read. */
async function load(
  pid: number,
  start: (count: (n: number) => void, signal: AbortSignal) => Promise<unknown>,
): Promise<Load> {
  const ac = new AbortController();
  let bytes = 0;
  const count = (n: number) => {
    bytes += n;
  };
  const viewers = Array.from({ length: VIEWERS }, () => start(count, ac.signal));
  await new Promise((r) => setTimeout(r, 3000)); // connected, past the first GOP burst
  let peakRss = 0;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, rssOf(pid));
  }, 250);
  const b0 = bytes;
  const a = treeTicks(pid);
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const cores = treeCores(a, treeTicks(pid), SECONDS);
  const bytesPerSec = (bytes - b0) / SECONDS;
  clearInterval(sampler);
  ac.abort();
  await Promise.allSettled(viewers);
  return { cores, peakRss, bytesPerSec };
}

/** RTMP players on `url`, closed when `signal` aborts. */
async function rtmpViewer(url: string, count: (n: number) => void, signal: AbortSignal): Promise<void> {
  const p = await RtmpPublisher.play(url, (m) => count(m.payload.length));
  await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
  p.socket.destroy();
}

async function startNginxRtmp(root: string): Promise<{ port: number; pid: number; stop: () => Promise<void> }> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const rtmp = `rtmp {
  server {
    listen 127.0.0.1:${port};
    chunk_size 4096;
    application live { live on; }
  }
}`;
  const ng = nginx(root, rtmp, [RTMP_MODULE]);
  await new Promise((r) => setTimeout(r, 500));
  return { port, ...ng };
}

export async function run(): Promise<BenchResult[]> {
  if (spawnSync("nginx", ["-v"]).status !== 0 || !existsSync(RTMP_MODULE))
    throw new Error("nginx with the RTMP module is not installed (apt-get install nginx libnginx-mod-rtmp)");
  const clip = await clip1080p();
  const root = mkdtempSync(join(tmpdir(), "ami-bench-nginx-rtmp-"));
  let theirs: Load;
  let ours: Load;
  try {
    const ng = await startNginxRtmp(root);
    const pub = publishLoop(clip, `rtmp://127.0.0.1:${ng.port}/live/flv`);
    try {
      await new Promise((r) => setTimeout(r, 3000));
      theirs = await load(ng.pid, (count, signal) => rtmpViewer(`rtmp://127.0.0.1:${ng.port}/live/flv`, count, signal));
    } finally {
      await pub.stop();
      await ng.stop();
    }
    // BENCH_FLV_MERGE_MS: media.httpFlvMergeMs for an A/B run (0: one write per frame per viewer, as before it).
    const merge = process.env.BENCH_FLV_MERGE_MS;
    const m = await MediaChild.start(merge === undefined ? {} : { httpFlvMergeMs: Number(merge) });
    const ourPub = publishLoop(clip, `${m.rtmp}/live/flv`);
    try {
      await waitFor("segments", async () => (await fetch(`${m.http}/live/flv/stream.m3u8`)).status === 200);
      ours = await load(m.pid, (count, signal) => flvViewer(`${m.http}/live/flv.flv`, count, signal));
    } finally {
      await ourPub.stop();
      await m.stop();
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  const name = `${VIEWERS} HTTP-FLV viewers, 1080p 6 Mb/s (${SECONDS} s)`;
  const ratio = ours.cores / theirs.cores;
  const rate = (l: Load) => `${round((l.bytesPerSec * 8) / 1e6, 0)} Mb/s delivered`;
  return [
    {
      bench: name,
      metric: "service CPU",
      value: round(ours.cores, 3),
      unit: `cores (${round(ratio, 2)}× nginx-rtmp), ${rate(ours)}, RSS ${mb(ours.peakRss)} MB`,
      baseline: `nginx-rtmp 1 worker, ${VIEWERS} RTMP players: ${round(theirs.cores, 3)} cores, ${rate(theirs)}, RSS ${mb(theirs.peakRss)} MB`,
      target: "≤ 1.5× nginx-rtmp",
      met: ratio <= 1.5,
    },
  ];
}

await runIfMain(import.meta, run);
