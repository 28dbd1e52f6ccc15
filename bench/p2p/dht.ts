/**
 * DHT lookups vs network size (issue 15): n = 100, 300, 1,000 real `Dht` nodes in one process over the in-memory
 * transport, and n = 100, 300 over real UDP sockets on 127.0.0.1. Per n: 40 infohashes announced, 100 get_peers lookups
 * from random nodes; latency, hops and queries per lookup. Same-run baseline: one get_peers round trip from the
 * looking node straight to a node holding the peer (what a lookup would cost with a perfect routing table), on the
 * same transport, interleaved with the lookups.
 * `node bench/p2p/dht.ts` (or `npm run bench dht`).
 */
import type { Dht } from "../../src/p2p/dht/dht.ts";
import type { NodeAddr } from "../../src/p2p/dht/id.ts";
import { announceAll, buildSim, median } from "../../src/p2p/dht/sim.ts";
import { type BenchResult, percentile, round, runIfMain } from "../matrix/lib.ts";

export async function one(n: number, udp: boolean): Promise<BenchResult[]> {
  const label = `${udp ? "UDP" : "in-memory"}, n=${n}`;
  const t0 = performance.now();
  const sim = await buildSim(n, { udp });
  const buildS = (performance.now() - t0) / 1000;
  try {
    const announced = await announceAll(sim, 40);
    const lat: number[] = [];
    const base: number[] = [];
    const hops: number[] = [];
    const queries: number[] = [];
    let ok = 0;
    const total = 100;
    for (let i = 0; i < total; i++) {
      const { infohash, peer } = announced[i % announced.length];
      const from = sim.nodes[Math.floor(Math.random() * sim.nodes.length)];
      const holder = sim.nodes.find((d) => d !== from && d.peers.get(infohash).length > 0) as Dht;
      // Baseline: one get_peers straight to a holder.
      let t = performance.now();
      await from.query(holder.address as NodeAddr, "get_peers", { info_hash: infohash });
      base.push(performance.now() - t);
      let found = false;
      t = performance.now();
      const r = await from.walk(infohash, {
        getPeers: true,
        onPeer: (p) => {
          if (p.host === peer.host && p.port === peer.port) found = true;
        },
      });
      lat.push(performance.now() - t);
      if (found || from.peers.get(infohash).some((p) => p.port === peer.port)) ok++;
      hops.push(r.hops);
      queries.push(r.queried);
    }
    const bound = Math.log2(n) + 2;
    const baseline = `one get_peers round trip to a holder: median ${round(median(base), 2)} ms, p95 ${round(percentile(base, 95), 2)} ms (build ${round(buildS, 1)} s)`;
    return [
      {
        bench: "dht",
        metric: `lookup latency median (${label})`,
        value: round(median(lat), 2),
        unit: "ms",
        baseline,
        target: "",
        met: null,
      },
      {
        bench: "dht",
        metric: `lookup latency p95 (${label})`,
        value: round(percentile(lat, 95), 2),
        unit: "ms",
        baseline,
        target: "",
        met: null,
      },
      {
        bench: "dht",
        metric: `hops median (${label})`,
        value: median(hops),
        unit: "hops",
        baseline: `queries per lookup median ${median(queries)}, p95 ${percentile(queries, 95)}; table size median ${median(sim.nodes.map((d) => d.table.size))}`,
        target: `<= log2(n)+2 = ${round(bound, 1)}`,
        met: median(hops) <= bound,
      },
      {
        bench: "dht",
        metric: `lookups that found the peer (${label})`,
        value: round((100 * ok) / total, 1),
        unit: "%",
        baseline: `${total} lookups, 40 infohashes`,
        target: "100 %",
        met: ok === total,
      },
    ];
  } finally {
    await sim.stop();
  }
}

export async function run(): Promise<BenchResult[]> {
  const rows: BenchResult[] = [];
  for (const n of [100, 300, 1000]) rows.push(...(await one(n, false)));
  for (const n of [100, 300]) rows.push(...(await one(n, true)));
  return rows;
}

await runIfMain(import.meta, run);
