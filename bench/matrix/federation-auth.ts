/**
 * X-Matrix request authentication cost: hs1 asks hs2 (both in this process, SQLite, loopback, found through
 * `federation.hostMap`) for a profile over the federation client — signed by hs1, verified by hs2 with hs1's cached
 * key. Same-run baseline: the same client to the same server for `GET /_matrix/federation/v1/version`, which needs no
 * signature (same resolution, HTTP and JSON path; only signing and verification differ). No target in the issue.
 */
import { createServer } from "node:net";
import { configSchema } from "../../src/config.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { startHomeserver } from "../../src/matrix/homeserver.ts";
import { tempDir, testMatrixConfig } from "../../test/e2e/helpers/homeserver.ts";
import { type BenchResult, percentile, round, runIfMain } from "./lib.ts";

const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 1000);
const WARMUP = 100;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address() as { port: number };
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export async function run(): Promise<BenchResult[]> {
  const [p1, p2] = [await freePort(), await freePort()];
  const hostMap = { "hs1.test": `http://127.0.0.1:${p1}`, "hs2.test": `http://127.0.0.1:${p2}` };
  const start = async (name: string, port: number) => {
    const dir = tempDir("ami-bench-fed-");
    const cfg = configSchema.parse({
      matrix: testMatrixConfig({
        serverName: name,
        port,
        database: `sqlite:${dir}/hs.db`,
        federation: { enabled: true, hostMap },
      }),
    });
    return startHomeserver(cfg.matrix, dir, silentLogger);
  };
  const hs1 = await start("hs1.test", p1);
  const hs2 = await start("hs2.test", p2);
  try {
    await hs2.hs.store.accounts.createUser({
      userId: "@alice:hs2.test",
      passwordHash: null,
      createdTs: Date.now(),
      admin: false,
      deactivated: false,
      isGuest: false,
      displayname: "Alice",
      avatarUrl: null,
    });
    const client = hs1.hs.federation.client;
    const signed = () =>
      client.request("hs2.test", {
        method: "GET",
        path: `/_matrix/federation/v1/query/profile?user_id=${encodeURIComponent("@alice:hs2.test")}`,
      });
    const bare = () =>
      client.request("hs2.test", { method: "GET", path: "/_matrix/federation/v1/version", sign: false });
    const measure = async (f: () => Promise<unknown>) => {
      for (let i = 0; i < WARMUP; i++) await f();
      const xs: number[] = [];
      for (let i = 0; i < SAMPLES; i++) {
        const t = performance.now();
        await f();
        xs.push(performance.now() - t);
      }
      return xs;
    };
    // Interleaved rounds, so load changes on the shared machine hit both alike.
    const s: number[] = [];
    const b: number[] = [];
    for (let round = 0; round < 4; round++) {
      b.push(...(await measure(bare)));
      s.push(...(await measure(signed)));
    }
    const baseline = `unsigned GET /version, same client and server: p50 ${round(percentile(b, 50), 3)} ms, p99 ${round(percentile(b, 99), 3)} ms`;
    return [
      {
        bench: "federation: X-Matrix signed request hs1 -> hs2",
        metric: "p50",
        value: round(percentile(s, 50), 3),
        unit: "ms",
        baseline,
        target: "",
        met: null,
      },
      {
        bench: "federation: X-Matrix signed request hs1 -> hs2",
        metric: "p99",
        value: round(percentile(s, 99), 3),
        unit: "ms",
        baseline: "(same)",
        target: "",
        met: null,
      },
    ];
  } finally {
    await hs1.close();
    await hs2.close();
  }
}

await runIfMain(import.meta, run);
