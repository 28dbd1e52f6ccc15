/**
 * Resident memory (VmRSS from /proc/<pid>/status) of the homeserver process: idle after start, and after load
 * (50-sender send load, then the 100x100 initial-sync scenario), and again once the load is over and V8's memory
 * reducer has run (it starts 8 s after allocation stops; until then the heap still holds the load's garbage).
 * SQLite store. Baseline, same run: the RSS of a bare node:http server process (Node's own floor).
 * Target: idle <= 80 MB.
 *
 * Children run as the supervisor runs services (src/control/runner.ts): `--max-semi-space-size=1`, the compile
 * cache on, and MALLOC_MMAP_THRESHOLD_ fixed at 128 KiB. Without that, glibc raises its mmap threshold after
 * the first big free and every libuv thread's arena keeps a 16 MiB scrypt buffer (password hashing) forever.
 */
import { ChildHomeserver } from "../../test/e2e/helpers/homeserver.ts";
import { measure, populate } from "./initial-sync.ts";
import { BareServer, type BenchResult, mb, rssOf, runIfMain } from "./lib.ts";
import { sendLoad } from "./throughput.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const SETTLE_S = 12;

export async function run(): Promise<BenchResult[]> {
  // Inherited by both children (ChildHomeserver and BareServer spread process.env).
  process.env.MALLOC_MMAP_THRESHOLD_ ??= "131072";
  // A first start fills the compile cache (as any earlier run of the service does), so the idle figure never
  // includes the TypeScript stripper that only a cold start after a source change loads.
  await (await ChildHomeserver.start({ backend: "sqlite" })).dispose();
  const bare = await BareServer.start();
  await sleep(2000);
  const bareRss = rssOf(bare.pid);
  await bare.stop();
  const hs = await ChildHomeserver.start({ backend: "sqlite" });
  try {
    await sleep(2000);
    const idle = hs.rssBytes();
    await sendLoad(hs, 5);
    const user = await populate(hs);
    await measure(hs, user);
    const loaded = hs.rssBytes();
    await sleep(SETTLE_S * 1000);
    const settled = hs.rssBytes();
    const baseline = `bare node:http process ${mb(bareRss)} MB`;
    return [
      {
        bench: "homeserver RSS (sqlite)",
        metric: "idle",
        value: mb(idle),
        unit: "MB",
        baseline,
        target: "<= 80 MB",
        met: mb(idle) <= 80,
      },
      {
        bench: "homeserver RSS (sqlite)",
        metric: "after load",
        value: mb(loaded),
        unit: "MB",
        baseline,
        target: "",
        met: null,
      },
      {
        bench: "homeserver RSS (sqlite)",
        metric: `after load +${SETTLE_S} s`,
        value: mb(settled),
        unit: "MB",
        baseline,
        target: "",
        met: null,
      },
    ];
  } finally {
    await hs.dispose();
  }
}

await runIfMain(import.meta, run);
