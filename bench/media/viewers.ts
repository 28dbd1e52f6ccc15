/**
 * 500 concurrent HLS viewers on loopback: each viewer (one keep-alive connection) loops over "fetch the media
 * playlist, fetch its newest segment" for 10 s; figures are bytes/s served, p99 segment fetch time and the
 * server's RSS. The stream is the 1080p30 6 Mb/s clip published in a loop. Baseline, same run: nginx (Debian,
 * one worker, as our service is one process) serving a snapshot of the same playlist and segment files as static
 * files, loaded the same way by the same client. Target ≥ 0.7× nginx's throughput.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BenchResult, mb, percentile, round, rssOf, runIfMain } from "../matrix/lib.ts";
import { clip1080p, MediaChild, nginx, publishLoop, tree, waitFor } from "./lib.ts";

const VIEWERS = 500;
const SECONDS = 10;

interface Load {
  bytesPerSec: number;
  segmentsPerSec: number;
  segP99: number;
  segP50: number;
  errors: number;
  peakRss: number;
}

function get(agent: Agent, url: URL, path: string): Promise<{ status: number; body?: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path, agent }, (res) => {
      let bytes = 0;
      const text = path.endsWith(".m3u8");
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => {
        bytes += c.length;
        if (text) chunks.push(c);
      });
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, bytes, body: text ? Buffer.concat(chunks).toString() : undefined }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/** `pids()`: the server's processes, sampled for RSS while the load runs. */
async function load(base: string, prefix: string, pids: () => number[]): Promise<Load> {
  const url = new URL(base);
  const agent = new Agent({ keepAlive: true, maxSockets: VIEWERS });
  const segTimes: number[] = [];
  let bytes = 0;
  let errors = 0;
  let peakRss = 0;
  const sampler = setInterval(() => {
    let rss = 0;
    for (const p of pids()) {
      const r = rssOf(p);
      if (Number.isFinite(r)) rss += r;
    }
    peakRss = Math.max(peakRss, rss);
  }, 250);
  const end = Date.now() + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: VIEWERS }, async () => {
      while (Date.now() < end) {
        try {
          const p = await get(agent, url, `${prefix}/stream.m3u8`);
          bytes += p.bytes;
          const seg = p.body?.match(/^seg\d+\.m4s$/gm)?.at(-1);
          if (p.status !== 200 || !seg) {
            errors++;
            continue;
          }
          const t = performance.now();
          const s = await get(agent, url, `${prefix}/${seg}`);
          if (s.status !== 200) errors++;
          else segTimes.push(performance.now() - t);
          bytes += s.bytes;
        } catch {
          errors++;
        }
      }
    }),
  );
  clearInterval(sampler);
  agent.destroy();
  return {
    bytesPerSec: bytes / SECONDS,
    segmentsPerSec: segTimes.length / SECONDS,
    segP99: percentile(segTimes, 99),
    segP50: percentile(segTimes, 50),
    errors,
    peakRss,
  };
}

/** Copy the current playlist and its segments from our server into `dir` (the nginx baseline's files). */
async function snapshot(http: string, prefix: string, dir: string): Promise<void> {
  const pl = await (await fetch(`${http}/${prefix}/stream.m3u8`)).text();
  writeFileSync(join(dir, "stream.m3u8"), pl);
  for (const f of ["init.mp4", ...(pl.match(/^seg\d+\.m4s$/gm) ?? [])])
    writeFileSync(join(dir, f), Buffer.from(await (await fetch(`${http}/${prefix}/${f}`)).arrayBuffer()));
}

async function startNginx(root: string): Promise<{ port: number; pid: number; stop: () => Promise<void> }> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const ng = nginx(
    root,
    `http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 65;
  types { application/vnd.apple.mpegurl m3u8; video/mp4 mp4; video/iso.segment m4s; }
  server {
    listen 127.0.0.1:${port};
    root ${root}/files;
    location / { }
  }
}`,
  );
  await waitFor("nginx", async () => (await fetch(`http://127.0.0.1:${port}/stream.m3u8`)).status === 200, 10000);
  return { port, ...ng };
}

export async function run(): Promise<BenchResult[]> {
  if (spawnSync("nginx", ["-v"]).status !== 0) throw new Error("nginx is not installed (apt-get install nginx)");
  const clip = await clip1080p();
  const m = await MediaChild.start();
  const pub = publishLoop(clip, `${m.rtmp}/live/viewers`);
  const root = mkdtempSync(join(tmpdir(), "ami-bench-nginx-"));
  let ours: Load;
  let theirs: Load;
  try {
    await waitFor("segments", async () => {
      const r = await fetch(`${m.http}/live/viewers/stream.m3u8`);
      return r.status === 200 && ((await r.text()).match(/^seg\d+\.m4s$/gm)?.length ?? 0) >= 3;
    });
    const files = join(root, "files");
    spawnSync("mkdir", ["-p", files]);
    await snapshot(m.http, "live/viewers", files);
    const ng = await startNginx(root);
    try {
      theirs = await load(`http://127.0.0.1:${ng.port}`, "", () => tree(ng.pid));
    } finally {
      await ng.stop();
    }
    ours = await load(m.http, "/live/viewers", () => [m.pid]);
  } finally {
    await pub.stop();
    await m.stop();
    rmSync(root, { recursive: true, force: true });
  }
  const ratio = ours.bytesPerSec / theirs.bytesPerSec;
  const name = `${VIEWERS} concurrent HLS viewers, 1080p 6 Mb/s (playlist + newest segment, loop)`;
  const ng = (l: Load) =>
    `nginx 1 worker, same files: ${round(l.bytesPerSec / 2 ** 20, 0)} MiB/s, ${round(l.segmentsPerSec, 0)} seg/s, p50 ${round(l.segP50, 0)} ms, p99 ${round(l.segP99, 0)} ms, RSS ${mb(l.peakRss)} MB, ${l.errors} errors`;
  return [
    {
      bench: name,
      metric: "throughput",
      value: round(ours.bytesPerSec / 2 ** 20, 0),
      unit: `MiB/s, ${round(ours.segmentsPerSec, 0)} seg/s (${round(ratio, 2)}× nginx), ${ours.errors} errors`,
      baseline: ng(theirs),
      target: "≥ 0.7× nginx",
      met: ratio >= 0.7,
    },
    {
      bench: name,
      metric: "segment fetch p99",
      value: round(ours.segP99, 0),
      unit: `ms (p50 ${round(ours.segP50, 0)} ms)`,
      baseline: "(same)",
      target: "",
      met: null,
    },
    {
      bench: name,
      metric: "service RSS (peak)",
      value: mb(ours.peakRss),
      unit: "MB",
      baseline: "(same)",
      target: "",
      met: null,
    },
  ];
}

await runIfMain(import.meta, run);
