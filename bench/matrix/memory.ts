/**
 * Resident memory (VmRSS from /proc/<pid>/status) of the homeserver process: idle after start, and after load
 * (50-sender send load, then the 100x100 initial-sync scenario), and again after 5 s of quiet. SQLite store.
 * Baseline, same run: the RSS of a bare node:http server process (Node's own floor). Target: idle <= 80 MB.
 */
import { ChildHomeserver } from "../../test/e2e/helpers/homeserver.ts";
import { measure, populate } from "./initial-sync.ts";
import { BareServer, type BenchResult, mb, rssOf, runIfMain } from "./lib.ts";
import { sendLoad } from "./throughput.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function run(): Promise<BenchResult[]> {
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
    await sleep(5000);
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
        metric: "after load +5 s",
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
