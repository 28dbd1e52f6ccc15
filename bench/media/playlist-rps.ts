/**
 * Requests per second for the files players poll, and the service's memory. The 1080p30 6 Mb/s clip is
 * published in a loop; a load generator in its own process (`rps-load.ts`: raw keep-alive sockets, one request
 * in flight per connection) GETs one URL over and over for a few seconds: the LL-HLS media playlist, its delta
 * update (`_HLS_skip=YES`), the multivariant playlist, the DASH MPD and the newest segment. Baseline, same run:
 * nginx (one worker, as our service is one process; `sendfile on`, no access log) serving a snapshot of the same
 * files as static files, loaded by the same generator. Targets: playlists ≥ 1.0× nginx, segments ≥ 1.0× nginx.
 * A second baseline for the playlists: bare node:http in its own process answering a fixed body of the same size
 * (`bench/matrix/bare-server.ts`), the ceiling for any answer on node:http.
 *
 * Memory: the service's RSS idle (no stream) and with the one stream, with `process.memoryUsage()` of the
 * service (heap, external, array buffers) to show where it goes.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { BareServer, type BenchResult, mb, round, runIfMain } from "../matrix/lib.ts";
import { clip1080p, MediaChild, nginx, publishLoop, waitFor } from "./lib.ts";

const CONNS = 50;
const SECONDS = 5;

interface Rps {
  rps: number;
  errors: number;
  mibps: number;
}

async function loadUrl(base: string, path: string): Promise<Rps> {
  const u = new URL(base);
  const entry = fileURLToPath(new URL("./rps-load.ts", import.meta.url));
  const proc = spawn(process.execPath, [entry, u.hostname, u.port, path, String(CONNS), String(SECONDS)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  proc.stdout.setEncoding("utf8").on("data", (d: string) => {
    out += d;
  });
  await new Promise((r) => proc.once("close", r));
  const r = JSON.parse(out) as { ok: number; errors: number; bytes: number };
  return { rps: r.ok / SECONDS, errors: r.errors, mibps: r.bytes / SECONDS / 2 ** 20 };
}

const FILES = { media: "stream.m3u8", multivariant: "index.m3u8", mpd: "index.mpd" } as const;

async function startNginx(root: string): Promise<{ port: number; stop: () => Promise<void> }> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const ng = nginx(
    root,
    `http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000000;
  keepalive_timeout 65;
  types { application/vnd.apple.mpegurl m3u8; application/dash+xml mpd; video/mp4 mp4; video/iso.segment m4s; }
  server {
    listen 127.0.0.1:${port};
    root ${root}/files;
    location / { add_header Cache-Control no-cache; }
  }
}`,
  );
  await waitFor("nginx", async () => (await fetch(`http://127.0.0.1:${port}/stream.m3u8`)).status === 200, 10000);
  return { port, stop: ng.stop };
}

export async function run(): Promise<BenchResult[]> {
  if (spawnSync("nginx", ["-v"]).status !== 0) throw new Error("nginx is not installed (apt-get install nginx)");
  const clip = await clip1080p();
  const m = await MediaChild.start();
  await new Promise((r) => setTimeout(r, 2000));
  const idle = await m.memory();
  const pub = publishLoop(clip, `${m.rtmp}/live/rps`);
  const root = mkdtempSync(join(tmpdir(), "ami-bench-rps-"));
  const prefix = "/live/rps";
  const rows: { what: string; ours: Rps; theirs: Rps; bare?: Rps; target: number }[] = [];
  let streaming: Awaited<ReturnType<MediaChild["memory"]>>;
  try {
    await waitFor("segments", async () => {
      const r = await fetch(`${m.http}${prefix}/stream.m3u8`);
      return r.status === 200 && ((await r.text()).match(/^seg\d+\.m4s$/gm)?.length ?? 0) >= 4;
    });
    await new Promise((r) => setTimeout(r, 3000));
    streaming = await m.memory();
    const files = join(root, "files");
    mkdirSync(files);
    const snap = async (ours: string, file: string) => {
      const body = Buffer.from(await (await fetch(`${m.http}${prefix}/${ours}`)).arrayBuffer());
      writeFileSync(join(files, file), body);
      return body;
    };
    const sizes = new Map<string, number>();
    for (const f of Object.values(FILES)) sizes.set(f, (await snap(f, f)).length);
    const ng = await startNginx(root);
    try {
      const cases: [string, string, string, number][] = [
        ["LL-HLS media playlist", `${prefix}/stream.m3u8`, "/stream.m3u8", 1],
        ["LL-HLS delta playlist (_HLS_skip=YES)", `${prefix}/stream.m3u8?_HLS_skip=YES`, "/stream.m3u8", 1],
        ["multivariant playlist", `${prefix}/index.m3u8`, "/index.m3u8", 1],
        ["DASH MPD", `${prefix}/index.mpd`, "/index.mpd", 1],
      ];
      for (const [what, ours, theirs, target] of cases) {
        const t = await loadUrl(`http://127.0.0.1:${ng.port}`, theirs);
        const o = await loadUrl(m.http, ours);
        const b = await BareServer.start(sizes.get(theirs.slice(1)) ?? 0);
        let bare: Rps;
        try {
          bare = await loadUrl(b.url, "/");
        } finally {
          await b.stop();
        }
        rows.push({ what, ours: o, theirs: t, bare, target });
      }
      // The newest complete segment, snapshotted just before ours is loaded (it stays kept for the run).
      const pl = await (await fetch(`${m.http}${prefix}/stream.m3u8`)).text();
      const seg = pl.match(/^seg\d+\.m4s$/gm)?.at(-1) as string;
      await snap(seg, seg);
      const o = await loadUrl(m.http, `${prefix}/${seg}`);
      const t = await loadUrl(`http://127.0.0.1:${ng.port}`, `/${seg}`);
      rows.push({ what: "newest segment (~0.75 MB)", ours: o, theirs: t, target: 1 });
    } finally {
      await ng.stop();
    }
  } finally {
    await pub.stop();
    await m.stop();
    rmSync(root, { recursive: true, force: true });
  }
  const mem = (u: typeof idle) =>
    `RSS ${mb(u.rss)} MB (heap used ${mb(u.heapUsed)} / total ${mb(u.heapTotal)}, external ${mb(u.external)}, array buffers ${mb(u.arrayBuffers)})`;
  return [
    ...rows.map((r) => {
      const ratio = r.ours.rps / r.theirs.rps;
      return {
        bench: `HTTP req/s, ${CONNS} keep-alive connections, ${SECONDS} s`,
        metric: r.what,
        value: Math.round(r.ours.rps),
        unit: `req/s (${round(ratio, 2)}× nginx), ${round(r.ours.mibps, 1)} MiB/s, ${r.ours.errors} errors`,
        baseline:
          `nginx 1 worker, same file static: ${Math.round(r.theirs.rps)} req/s, ${round(r.theirs.mibps, 1)} MiB/s, ${r.theirs.errors} errors` +
          (r.bare
            ? `; bare node:http, fixed body of that size: ${Math.round(r.bare.rps)} req/s (ours ${round(r.ours.rps / r.bare.rps, 2)}×)`
            : ""),
        target: `≥ ${r.target}× nginx`,
        met: ratio >= r.target,
      };
    }),
    {
      bench: "media service memory",
      metric: "idle RSS",
      value: mb(idle.rss),
      unit: "MB",
      baseline: mem(idle),
      target: "",
      met: null,
    },
    {
      bench: "media service memory",
      metric: "one 1080p30 6 Mb/s stream (RTMP in, HLS/LL-HLS/DASH out)",
      value: mb(streaming!.rss - idle.rss),
      unit: `MB over idle (RSS ${mb(streaming!.rss)} MB)`,
      baseline: mem(streaming!),
      target: "",
      met: null,
    },
  ];
}

await runIfMain(import.meta, run);
