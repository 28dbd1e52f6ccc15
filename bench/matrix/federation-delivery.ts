/**
 * Federation delivery latency (issue 12: hs1 -> hs2 p50 <= 20 ms on loopback): alice on hs1 sends a to-device
 * message to bob on hs2 (`PUT /sendToDevice` on hs1 -> queued EDU -> `PUT /_matrix/federation/v1/send` signed by hs1,
 * verified by hs2 -> bob's inbox); the time from alice's request to bob's long-polling /sync on hs2 answering it.
 * Same-run baseline: the same delivery without federation — carol, a user on hs2, sends to bob.
 * Both homeservers in this process (SQLite, loopback, found through `federation.hostMap`).
 */
import {
  register,
  sendToDevice,
  startFederation,
  type TestUser,
  ToDeviceInbox,
} from "../../test/e2e/helpers/federation.ts";
import { type BenchResult, percentile, round, runIfMain } from "./lib.ts";

const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 200);
const ROUNDS = 3;
const WARMUP = 20;

export async function run(): Promise<BenchResult[]> {
  const s = await startFederation(["hs1.test", "hs2.test"]);
  const [hs1, hs2] = [s["hs1.test"], s["hs2.test"]];
  try {
    const alice = await register(hs1.url, "alice");
    const carol = await register(hs2.url, "carol");
    const bob = await register(hs2.url, "bob");
    const inbox = new ToDeviceInbox(hs2.url, bob);
    await inbox.poll(0);
    let n = 0;
    const once = async (base: string, from: TestUser): Promise<number> => {
      const seq = n++;
      const t = performance.now();
      const got = inbox.take(1);
      await sendToDevice(base, from, `b${seq}`, { [bob.userId]: { [bob.deviceId]: { seq } } });
      const evs = await got;
      const ms = performance.now() - t;
      if (evs.length !== 1 || evs[0].content.seq !== seq) throw new Error(`bench: expected message ${seq}`);
      return ms;
    };
    const measure = async (base: string, from: TestUser) => {
      for (let i = 0; i < WARMUP; i++) await once(base, from);
      const xs: number[] = [];
      for (let i = 0; i < SAMPLES; i++) xs.push(await once(base, from));
      return xs;
    };
    // Interleaved rounds, so load changes on the shared machine hit both alike.
    const fed: number[] = [];
    const local: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      local.push(...(await measure(hs2.url, carol)));
      fed.push(...(await measure(hs1.url, alice)));
    }
    const p50 = percentile(fed, 50);
    const baseline = `local to-device on hs2 (carol -> bob): p50 ${round(percentile(local, 50), 2)} ms, p99 ${round(percentile(local, 99), 2)} ms`;
    const bench = "federation: to-device hs1 -> hs2 delivery";
    return [
      { bench, metric: "p50", value: round(p50, 2), unit: "ms", baseline, target: "<= 20 ms", met: p50 <= 20 },
      {
        bench,
        metric: "p99",
        value: round(percentile(fed, 99), 2),
        unit: "ms",
        baseline: "(same)",
        target: "",
        met: null,
      },
    ];
  } finally {
    for (const h of Object.values(s)) await h.dispose();
  }
}

await runIfMain(import.meta, run);
