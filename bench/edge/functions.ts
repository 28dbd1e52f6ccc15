/**
 * Edge functions (issue 14): cold start (deploy -> first 200 through the edge service) and warm per-request
 * overhead (a request through the edge service's /fn/<name>/ against the same worker served by workerd alone).
 * Baselines, same run, same worker: workerd alone spawned to its first 200 (cold), and requests straight to that
 * workerd over a keep-alive connection (warm). Rounds are interleaved so machine noise hits both sides alike.
 * Where the cold start goes: the same deploy with no pool (edge.poolSize 0: workerd started per deploy), the start
 * of a pooled process alone (spawn -> its loader answers), the first request after an idle stop, and `workerd
 * --version` (exec and dynamic linking, the floor of any spawn). Memory: RSS of an idle pooled process, of one
 * serving the function, and of workerd alone serving it.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStoreAt } from "../../src/cas/open.ts";
import { sampleProc } from "../../src/control/proc.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { runtimePaths } from "../../src/core/paths.ts";
import { edgeSchema } from "../../src/edge/config.ts";
import { WorkerdPool } from "../../src/edge/pool.ts";
import { startEdge } from "../../src/edge/server.ts";
import { defaultWorkerd } from "../../src/edge/workerd.ts";
import { type BenchResult, mb, percentile, round, runIfMain } from "../matrix/lib.ts";

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
async function workerdAlone(dir: string): Promise<{ ms: number; port: number; pid: number; stop: () => void }> {
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
  return { ms: performance.now() - t, port, pid: child.pid ?? 0, stop: () => child.kill("SIGKILL") };
}

async function edgeWith(config: Record<string, unknown>) {
  const home = mkdtempSync(join(tmpdir(), "ami-bench-edge-"));
  const edge = await startEdge({
    config: edgeSchema.parse({ port: 0, ...config }),
    paths: runtimePaths(home),
    log: silentLogger,
    cas: openStoreAt(join(home, "cas")),
    token: null,
  });
  await edge.runtime.pool.settled();
  return {
    edge,
    port: Number(new URL(edge.url).port),
    async close() {
      await edge.close();
      rmSync(home, { recursive: true, force: true });
    },
  };
}

const spawnOptions = {
  workerd: defaultWorkerd(),
  sockDir: tmpdir(),
  home: tmpdir(),
  compatibilityDate: "2025-01-01",
  kvAddress: "127.0.0.1:9",
  origin: null,
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const med = (xs: number[]) => percentile(xs, 50);
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

export async function run(): Promise<BenchResult[]> {
  const pooled = await edgeWith({ poolSize: 1 });
  const unpooled = await edgeWith({ poolSize: 0 });
  // idleStopMs 300: the idle timer checks every 150 ms, so a function stops ~0.3-0.45 s after its last request.
  const idle = await edgeWith({ poolSize: 1, idleStopMs: 300 });
  // poolSize 0: every claim starts a process, which times a pooled process's start (a refill) on its own.
  const spawnOnly = new WorkerdPool({
    size: 0,
    log: silentLogger,
    spawn: { ...spawnOptions, runDir: join(tmpdir(), `ami-bench-spawn-${process.pid}`) },
  });
  const cold: number[] = [];
  const coldNoPool: number[] = [];
  const coldAlone: number[] = [];
  const poolStart: number[] = [];
  const wake: number[] = [];
  const exec: number[] = [];
  const rss = { idle: [] as number[], serving: [] as number[], alone: [] as number[] };
  let alone: Awaited<ReturnType<typeof workerdAlone>> | undefined;
  let aloneDir: string | undefined;
  try {
    await idle.edge.runtime.deploy("sleepy", WORKER);
    for (let i = 0; i < COLD; i++) {
      // With the pool full (the steady state: a claimed process is replaced in the background right after a claim).
      await pooled.edge.runtime.pool.settled();
      for (const pid of pooled.edge.runtime.pool.pids()) rss.idle.push(sampleProc(pid)?.rssBytes ?? 0);
      let t = performance.now();
      await pooled.edge.runtime.deploy(`cold${i}`, WORKER);
      if ((await get(pooled.port, `/fn/cold${i}/`)) !== 200) throw new Error("cold start did not answer 200");
      cold.push(performance.now() - t);
      await pooled.edge.runtime.pool.settled();

      t = performance.now();
      await unpooled.edge.runtime.deploy(`cold${i}`, WORKER);
      if ((await get(unpooled.port, `/fn/cold${i}/`)) !== 200) throw new Error("no-pool cold start did not answer 200");
      coldNoPool.push(performance.now() - t);

      const d = mkdtempSync(join(tmpdir(), "ami-bench-wd-"));
      const a = await workerdAlone(d);
      coldAlone.push(a.ms);
      rss.alone.push(sampleProc(a.pid)?.rssBytes ?? 0);
      if (i < COLD - 1) {
        a.stop();
        rmSync(d, { recursive: true, force: true });
      } else {
        alone = a;
        aloneDir = d;
      }

      t = performance.now();
      await spawnOnly.claim().then((p) => {
        poolStart.push(performance.now() - t);
        return p.close();
      });

      t = performance.now();
      execFileSync(defaultWorkerd(), ["--version"]);
      exec.push(performance.now() - t);

      // Wake after an idle stop: wait until the function gave its process up, then time its next request.
      await idle.edge.runtime.pool.settled();
      const stopBy = Date.now() + 5000;
      while (idle.edge.runtime.stats()[0].running && Date.now() < stopBy) await sleep(50);
      if (idle.edge.runtime.stats()[0].running) throw new Error("the idle function did not stop");
      t = performance.now();
      if ((await get(idle.port, "/fn/sleepy/", false)) !== 200) throw new Error("wake did not answer 200");
      wake.push(performance.now() - t);
    }
    for (const f of pooled.edge.runtime.stats()) if (f.rssBytes > 0) rss.serving.push(f.rssBytes);

    // Warm runs on the function's dedicated process (promoted after its first load), as a function serves for good.
    const promotedBy = Date.now() + 10_000;
    while (!pooled.edge.runtime.stats().find((f) => f.name === "cold0")?.dedicated && Date.now() < promotedBy)
      await sleep(50);
    await sleep(500); // the last deploys' promotions, off the measurement
    // Warm: interleaved blocks of 100 sequential requests, edge vs workerd alone, each on its own keep-alive agent.
    const edgeAgent = new Agent({ keepAlive: true, maxSockets: 1 });
    const aloneAgent = new Agent({ keepAlive: true, maxSockets: 1 });
    const viaEdge: number[] = [];
    const direct: number[] = [];
    const target = alone as NonNullable<typeof alone>;
    for (let k = 0; k < 200; k++) await get(pooled.port, "/fn/cold0/w", edgeAgent); // warm-up
    for (let k = 0; k < 200; k++) await get(target.port, "/w", aloneAgent);
    for (let b = 0; b < WARM / 100; b++) {
      for (let k = 0; k < 100; k++) {
        const t = performance.now();
        await get(pooled.port, "/fn/cold0/w", edgeAgent);
        viaEdge.push(performance.now() - t);
      }
      for (let k = 0; k < 100; k++) {
        const t = performance.now();
        await get(target.port, "/w", aloneAgent);
        direct.push(performance.now() - t);
      }
    }
    target.stop();
    const overhead = med(viaEdge) - med(direct);
    const ms = (xs: number[]) => `${round(med(xs), 1)} ms`;
    return [
      {
        bench: "edge",
        metric: "cold start: deploy -> first 200 (median, pool of 1)",
        value: round(med(cold), 1),
        unit: "ms",
        baseline:
          `workerd alone spawn -> first 200: ${ms(coldAlone)}; same deploy with no pool: ${ms(coldNoPool)}; ` +
          `pooled process start (refill, off the request path): ${ms(poolStart)}; workerd --version: ${ms(exec)} (n=${COLD})`,
        target: "<= 50 ms",
        met: med(cold) <= 50,
      },
      {
        bench: "edge",
        metric: "first request after an idle stop (median)",
        value: round(med(wake), 1),
        unit: "ms",
        baseline: `workerd alone spawn -> first 200: ${ms(coldAlone)}`,
        target: "<= 50 ms",
        met: med(wake) <= 50,
      },
      {
        bench: "edge",
        metric: "RSS: idle pooled process / serving the function",
        value: mb(med(rss.idle)),
        unit: "MB",
        baseline: `serving: ${mb(med(rss.serving))} MB; workerd alone serving it: ${mb(med(rss.alone))} MB`,
        target: "-",
        met: true,
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
    if (aloneDir) rmSync(aloneDir, { recursive: true, force: true });
    await Promise.all([pooled.close(), unpooled.close(), idle.close(), spawnOnly.close()]);
    rmSync(join(tmpdir(), `ami-bench-spawn-${process.pid}`), { recursive: true, force: true });
  }
}

await runIfMain(import.meta, run);
