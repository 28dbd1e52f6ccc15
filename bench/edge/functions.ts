/**
 * Edge functions (issue 14): cold start (deploy -> first 200 through the edge service) and warm per-request
 * overhead (a request through the edge service's /fn/<name>/ against the same worker served by workerd alone).
 * Baselines, same run, same worker: workerd alone spawned to its first 200 (cold), and requests straight to that
 * workerd over a keep-alive connection (warm). Rounds are interleaved so machine noise hits both sides alike.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStoreAt } from "../../src/cas/open.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { runtimePaths } from "../../src/core/paths.ts";
import { edgeSchema } from "../../src/edge/config.ts";
import { defaultWorkerd } from "../../src/edge/runtime.ts";
import { startEdge } from "../../src/edge/server.ts";
import { type BenchResult, percentile, round, runIfMain } from "../matrix/lib.ts";

const COLD = Number(process.env.BENCH_EDGE_COLD ?? 8);
const WARM = Number(process.env.BENCH_EDGE_WARM ?? 2000);
const WORKER = `export default { fetch(req) { return new Response("hello " + new URL(req.url).pathname); } };`;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address() as { port: number };
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const agent = new Agent({ keepAlive: true, maxSockets: 1 });
/** One GET on a keep-alive connection; resolves to the status once the body is read. */
function get(port: number, path: string, a: Agent | false = agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const r = request({ host: "127.0.0.1", port, path, agent: a }, (res) => {
      res.resume();
      res.once("end", () => resolve(res.statusCode ?? 0));
    });
    r.once("error", reject);
    r.end();
  });
}

/** workerd alone with the worker on a TCP port: spawn -> first 200, in ms; returns the process for warm rounds. */
async function workerdAlone(dir: string): Promise<{ ms: number; port: number; stop: () => void }> {
  const port = await freePort();
  writeFileSync(join(dir, "w.js"), WORKER);
  writeFileSync(
    join(dir, "c.capnp"),
    `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [(name = "main", worker = (modules = [(name = "w.js", esModule = embed "w.js")], compatibilityDate = "2025-01-01"))],
  sockets = [(name = "http", address = "127.0.0.1:${port}", http = (), service = "main")],
);
`,
  );
  const t = performance.now();
  const child = spawn(defaultWorkerd(), ["serve", join(dir, "c.capnp")], { stdio: "ignore" });
  for (;;) {
    const ok = await get(port, "/", false).catch(() => 0);
    if (ok === 200) break;
    await new Promise((r) => setTimeout(r, 2));
  }
  return { ms: performance.now() - t, port, stop: () => child.kill("SIGKILL") };
}

export async function run(): Promise<BenchResult[]> {
  const home = mkdtempSync(join(tmpdir(), "ami-bench-edge-"));
  const paths = runtimePaths(home);
  const edge = await startEdge({
    config: edgeSchema.parse({ port: 0 }),
    paths,
    log: silentLogger,
    cas: openStoreAt(join(home, "cas")),
    token: null,
  });
  const port = Number(new URL(edge.url).port);
  const coldEdge: number[] = [];
  const coldAlone: number[] = [];
  let alone: Awaited<ReturnType<typeof workerdAlone>> | undefined;
  try {
    for (let i = 0; i < COLD; i++) {
      const t = performance.now();
      await edge.runtime.deploy(`cold${i}`, WORKER);
      const s = await get(port, `/fn/cold${i}/`);
      if (s !== 200) throw new Error(`cold start answered ${s}`);
      coldEdge.push(performance.now() - t);
      const d = mkdtempSync(join(tmpdir(), "ami-bench-wd-"));
      const a = await workerdAlone(d);
      coldAlone.push(a.ms);
      if (i < COLD - 1) a.stop();
      else alone = a;
      if (i < COLD - 1) rmSync(d, { recursive: true, force: true });
    }
    // Warm: interleaved blocks of 100 sequential requests, edge vs workerd alone, each on its own keep-alive agent.
    const edgeAgent = new Agent({ keepAlive: true, maxSockets: 1 });
    const aloneAgent = new Agent({ keepAlive: true, maxSockets: 1 });
    const viaEdge: number[] = [];
    const direct: number[] = [];
    const target = alone as NonNullable<typeof alone>;
    for (let k = 0; k < 200; k++) await get(port, "/fn/cold0/w", edgeAgent); // warm-up
    for (let k = 0; k < 200; k++) await get(target.port, "/w", aloneAgent);
    for (let b = 0; b < WARM / 100; b++) {
      for (let k = 0; k < 100; k++) {
        const t = performance.now();
        await get(port, "/fn/cold0/w", edgeAgent);
        viaEdge.push(performance.now() - t);
      }
      for (let k = 0; k < 100; k++) {
        const t = performance.now();
        await get(target.port, "/w", aloneAgent);
        direct.push(performance.now() - t);
      }
    }
    target.stop();
    const med = (xs: number[]) => percentile(xs, 50);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const overhead = med(viaEdge) - med(direct);
    return [
      {
        bench: "edge",
        metric: "cold start: deploy -> first 200 (median)",
        value: round(med(coldEdge), 1),
        unit: "ms",
        baseline: `workerd alone spawn -> first 200: median ${round(med(coldAlone), 1)} ms (n=${COLD})`,
        target: "<= 50 ms",
        met: med(coldEdge) <= 50,
      },
      {
        bench: "edge",
        metric: "warm overhead per request (median)",
        value: round(overhead, 3),
        unit: "ms",
        baseline: `via edge median ${round(med(viaEdge), 3)} / p99 ${round(percentile(viaEdge, 99), 3)} ms (mean ${round(mean(viaEdge), 3)}); workerd alone median ${round(med(direct), 3)} / p99 ${round(percentile(direct, 99), 3)} ms (mean ${round(mean(direct), 3)}); n=${WARM}`,
        target: "<= 1 ms",
        met: overhead <= 1,
      },
    ];
  } finally {
    alone?.stop();
    await edge.close();
    rmSync(home, { recursive: true, force: true });
  }
}

await runIfMain(import.meta, run);
