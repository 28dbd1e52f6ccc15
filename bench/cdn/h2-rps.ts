/**
 * Cache hits over HTTP/2 against HTTP/1.1 over TLS, same run, same edge node process, same port (ALPN picks), same
 * load generator: h2load (Debian nghttp2-client), 5 s per round, two interleaved rounds each, best kept. A 16 KB
 * object (max-age=3600) warmed once. h2: 10 connections × 10 concurrent streams; the baseline, HTTP/1.1 over TLS
 * (`h2load --h1`): 100 connections, one request in flight each — the same 100 requests in flight. No target: the
 * figure says what h2 costs or saves at the edge (TLS, HPACK and stream bookkeeping against more connections).
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type BenchResult, round, runIfMain } from "../matrix/lib.ts";
import { waitFor } from "../media/lib.ts";

const SECONDS = 5;
const PATH = "/obj16k";

interface Load {
  rps: number;
  failed: number;
  protocol: string;
}

/** Asynchronous: the origin answers from this process's event loop. */
async function h2load(url: string, h1: boolean): Promise<Load> {
  const args = h1 ? ["--h1", "-c", "100", "-m", "1"] : ["-c", "10", "-m", "10"];
  const p = spawn("h2load", [...args, "-D", String(SECONDS), "--warm-up-time=1", url], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  p.stdout.setEncoding("utf8").on("data", (d: string) => {
    out += d;
  });
  p.stderr.setEncoding("utf8").on("data", (d: string) => {
    out += d;
  });
  await new Promise((r) => p.once("close", r));
  const rps = /finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(out);
  const failed = /requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, (\d+) failed/.exec(out);
  const protocol = /Application protocol: (\S+)/.exec(out);
  if (!rps) throw new Error(`h2load gave no figure: ${out.slice(-500)}`);
  return { rps: Number(rps[1]), failed: Number(failed?.[1] ?? -1), protocol: protocol?.[1] ?? "?" };
}

async function fetchOnce(url: string): Promise<void> {
  const p = spawn("curl", ["-sk", "--http2", "-o", "/dev/null", url], { stdio: "ignore" });
  await new Promise((r) => p.once("close", r));
}

export async function run(): Promise<BenchResult[]> {
  if (spawnSync("h2load", ["--version"]).status !== 0)
    throw new Error("h2load is not installed (apt-get install nghttp2-client)");
  const body = Buffer.alloc(16 * 1024, "c");
  let originHits = 0;
  const origin = http.createServer((_req, res) => {
    originHits++;
    res.writeHead(200, { "cache-control": "public, max-age=3600", "content-length": body.length });
    res.end(body);
  });
  await new Promise<void>((r) => origin.listen(0, "127.0.0.1", r));
  const originUrl = `http://127.0.0.1:${(origin.address() as { port: number }).port}`;
  const dir = mkdtempSync(join(tmpdir(), "ami-bench-h2-"));
  execFileSync("openssl", [
    ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"],
    ...["-subj", "/CN=localhost", "-keyout", join(dir, "k.pem"), "-out", join(dir, "c.pem")],
  ]);
  const edge = spawn(
    process.execPath,
    [fileURLToPath(new URL("./edge-child.ts", import.meta.url)), originUrl, join(dir, "c.pem"), join(dir, "k.pem")],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let lines = "";
  edge.stdout.setEncoding("utf8").on("data", (d: string) => {
    lines += d;
  });
  try {
    await waitFor("edge", async () => lines.split("\n").length > 2, 10000);
    const url = `${lines.split("\n")[1]}${PATH}`;
    // Warm: one request (the key is the same over both: Host and :authority are the URL's authority).
    await fetchOnce(url);
    const best = (a: Load, b: Load) => (b.rps > a.rps ? b : a);
    let h1 = await h2load(url, true);
    let h2 = await h2load(url, false);
    h1 = best(h1, await h2load(url, true));
    h2 = best(h2, await h2load(url, false));
    if (h2.protocol !== "h2" || h1.protocol !== "http/1.1") throw new Error(`protocols: ${h2.protocol} ${h1.protocol}`);
    return [
      {
        bench: `CDN cache hit over TLS, 16 KB object, 100 requests in flight, ${SECONDS} s (h2load)`,
        metric: "HTTP/2 (10 connections × 10 streams) req/s",
        value: Math.round(h2.rps),
        unit: `req/s (${round(h2.rps / h1.rps, 2)}× HTTP/1.1), ${h2.failed} failed`,
        baseline: `HTTP/1.1 over TLS, 100 connections, same node and port: ${Math.round(h1.rps)} req/s, ${h1.failed} failed; origin requests ${originHits}`,
        target: "",
        met: null,
      },
    ];
  } finally {
    edge.kill("SIGTERM");
    origin.closeAllConnections();
    origin.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await runIfMain(import.meta, run);
