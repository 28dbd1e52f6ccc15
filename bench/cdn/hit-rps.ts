/**
 * Cache-hit throughput: a 16 KB object (Cache-Control max-age=3600) from a node:http origin, warmed once, then
 * GET over and over by a load generator in its own process (latency-load.ts: 50 keep-alive connections, one
 * request in flight each, 5 s; two interleaved rounds per server, best kept). Ours: one edge node process. Baseline, same run: Debian nginx, one worker,
 * proxy_cache (keys_zone in memory, cache on a tmpfs-backed temp dir, `proxy_cache_lock on`, no access log) in
 * front of the same origin. Target: ≥ 1.0× nginx. p50/p99 from the generator (time to the whole answer).
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type BenchResult, round, runIfMain } from "../matrix/lib.ts";
import { nginx, waitFor } from "../media/lib.ts";

const CONNS = 50;
const SECONDS = 5;
const PATH = "/obj16k";

interface Load {
  rps: number;
  errors: number;
  p50: number;
  p99: number;
}

async function load(port: number): Promise<Load> {
  const entry = fileURLToPath(new URL("./latency-load.ts", import.meta.url));
  const p = spawn(process.execPath, [entry, "127.0.0.1", String(port), PATH, String(CONNS), String(SECONDS)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  p.stdout.setEncoding("utf8").on("data", (d: string) => {
    out += d;
  });
  await new Promise((r) => p.once("close", r));
  const r = JSON.parse(out) as { ok: number; errors: number; p50: number; p99: number };
  return { rps: r.ok / SECONDS, errors: r.errors, p50: r.p50, p99: r.p99 };
}

export async function run(): Promise<BenchResult[]> {
  if (spawnSync("nginx", ["-v"]).status !== 0) throw new Error("nginx is not installed (apt-get install nginx)");
  const body = Buffer.alloc(16 * 1024, "c");
  let originHits = 0;
  const origin = http.createServer((_req, res) => {
    originHits++;
    res.writeHead(200, {
      "cache-control": "public, max-age=3600",
      "content-type": "application/octet-stream",
      "content-length": body.length,
    });
    res.end(body);
  });
  await new Promise<void>((r) => origin.listen(0, "127.0.0.1", r));
  const originUrl = `http://127.0.0.1:${(origin.address() as { port: number }).port}`;
  const root = mkdtempSync(join(tmpdir(), "ami-bench-cdn-"));
  mkdirSync(join(root, "cache"));
  const ngPort = 20000 + Math.floor(Math.random() * 20000);
  const ng = nginx(
    root,
    `http {
  access_log off;
  keepalive_requests 100000000;
  proxy_cache_path ${root}/cache levels=1:2 keys_zone=edge:16m max_size=256m inactive=1h use_temp_path=off;
  upstream origin { server ${originUrl.slice(7)}; keepalive 16; }
  server {
    listen 127.0.0.1:${ngPort};
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache edge;
      proxy_cache_lock on;
      add_header X-Cache $upstream_cache_status;
    }
  }
}`,
  );
  const edge = spawn(process.execPath, [fileURLToPath(new URL("./edge-child.ts", import.meta.url)), originUrl], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let edgeUrl = "";
  edge.stdout.setEncoding("utf8").on("data", (d: string) => {
    edgeUrl += d;
  });
  try {
    await waitFor("edge", async () => edgeUrl.includes("\n"), 10000);
    const edgePort = Number(new URL(edgeUrl.trim()).port);
    await waitFor("nginx", async () => (await fetch(`http://127.0.0.1:${ngPort}${PATH}`)).status === 200, 10000);
    await waitFor(
      "nginx hit",
      async () => (await fetch(`http://127.0.0.1:${ngPort}${PATH}`)).headers.get("x-cache") === "HIT",
      10000,
    );
    await waitFor(
      "edge hit",
      async () =>
        (
          await fetch(`http://127.0.0.1:${edgePort}${PATH}`, { headers: { host: `127.0.0.1:${edgePort}` } })
        ).headers.get("x-cache") === "HIT",
      10000,
    );
    // Interleaved rounds, best of each: the machine is shared and its load moves between runs.
    const best = (a: Load, b: Load) => (b.rps > a.rps ? b : a);
    let theirs = await load(ngPort);
    let ours = await load(edgePort);
    theirs = best(theirs, await load(ngPort));
    ours = best(ours, await load(edgePort));
    const ratio = ours.rps / theirs.rps;
    return [
      {
        bench: `CDN cache hit, 16 KB object, ${CONNS} keep-alive connections, ${SECONDS} s`,
        metric: "edge node (1 process) req/s",
        value: Math.round(ours.rps),
        unit: `req/s (${round(ratio, 2)}× nginx), p50 ${round(ours.p50, 2)} ms, p99 ${round(ours.p99, 2)} ms, ${ours.errors} errors`,
        baseline: `nginx proxy_cache 1 worker: ${Math.round(theirs.rps)} req/s, p50 ${round(theirs.p50, 2)} ms, p99 ${round(theirs.p99, 2)} ms, ${theirs.errors} errors; origin requests ${originHits}`,
        target: "≥ 1.0× nginx",
        met: ratio >= 1,
      },
    ];
  } finally {
    edge.kill("SIGTERM");
    await ng.stop();
    origin.closeAllConnections();
    origin.close();
    rmSync(root, { recursive: true, force: true });
  }
}

await runIfMain(import.meta, run);
