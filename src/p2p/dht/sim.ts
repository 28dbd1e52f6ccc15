/**
 * The DHT simulation shared by the test and the bench: n real `Dht` nodes in one process over a MemoryNetwork
 * (every node its own IPv4 address; no sockets, so 1,000 nodes fit 2 cores). Node 0 is the only bootstrap node;
 * the others join in waves, as nodes joining a live network do.
 */
import { randomBytes } from "node:crypto";
import { Dht } from "./dht.ts";
import type { NodeAddr } from "./id.ts";
import { MemoryNetwork } from "./transport.ts";

export interface Sim {
  network: MemoryNetwork;
  nodes: Dht[];
  stop(): Promise<void>;
}

export async function buildSim(
  n: number,
  opts: { latencyMs?: number; wave?: number; timeoutMs?: number; udp?: boolean } = {},
) {
  const network = new MemoryNetwork({ latencyMs: opts.latencyMs });
  // On UDP every node is 127.0.0.1, so the per-IP limit would throttle the whole simulated network: off.
  const base = opts.udp
    ? { host: "127.0.0.1", rateLimit: false as const, queryTimeoutMs: opts.timeoutMs ?? 1000, autoBootstrap: false }
    : { network, queryTimeoutMs: opts.timeoutMs ?? 1000, autoBootstrap: false };
  const seed = new Dht(base);
  await seed.start();
  const entry = seed.address as NodeAddr;
  const nodes = [seed];
  for (let i = 1; i < n; i++) nodes.push(new Dht({ ...base, bootstrap: [`${entry.host}:${entry.port}`] }));
  // Join explicitly, in waves, so the sim can wait for each wave.
  const wave = opts.wave ?? 20;
  for (let i = 1; i < n; i += wave) {
    const batch = nodes.slice(i, i + wave);
    await Promise.all(batch.map((d) => d.start()));
    await Promise.all(batch.map((d) => d.bootstrap()));
  }
  // Then every node refreshes all its buckets once (what the 15-minute bucket refresh does over time), so early
  // joiners learn about the nodes that joined after them; full buckets are skipped to keep the sim cheap.
  for (let i = 0; i < n; i += 20) await Promise.all(nodes.slice(i, i + 20).map((d) => d.refresh(0, true)));
  return {
    network,
    nodes,
    stop: async () => {
      await Promise.all(nodes.map((d) => d.stop()));
    },
  } satisfies Sim;
}

export interface LookupStats {
  ok: number;
  total: number;
  hops: number[];
  queried: number[];
  ms: number[];
}

/**
 * `count` infohashes, each announced by one random live node (TCP port 1000 + i); then every one is looked up
 * from another random live node. Success = the lookup yields the announced peer.
 */
export async function announceAll(sim: Sim, count: number, live: (d: Dht) => boolean = () => true) {
  const alive = sim.nodes.filter(live);
  const out: Array<{ infohash: Buffer; peer: NodeAddr; acks: number }> = [];
  for (let i = 0; i < count; i++) {
    const d = alive[Math.floor(Math.random() * alive.length)];
    const infohash = randomBytes(20);
    const acks = await d.announceCount(infohash, 1000 + i);
    out.push({ infohash, peer: { host: (d.address as NodeAddr).host, port: 1000 + i }, acks });
  }
  return out;
}

export async function lookupAll(
  sim: Sim,
  targets: Array<{ infohash: Buffer; peer: NodeAddr }>,
  live: (d: Dht) => boolean = () => true,
  parallel = 10,
): Promise<LookupStats> {
  const alive = sim.nodes.filter(live);
  const s: LookupStats = { ok: 0, total: targets.length, hops: [], queried: [], ms: [] };
  for (let i = 0; i < targets.length; i += parallel) {
    await Promise.all(
      targets.slice(i, i + parallel).map(async ({ infohash, peer }) => {
        const d = alive[Math.floor(Math.random() * alive.length)];
        let found = false;
        const t = performance.now();
        const r = await d.walk(infohash, {
          getPeers: true,
          onPeer: (p) => {
            if (p.host === peer.host && p.port === peer.port) found = true;
          },
        });
        s.ms.push(performance.now() - t);
        if (found || d.peers.get(infohash).some((p) => p.host === peer.host && p.port === peer.port)) s.ok++;
        s.hops.push(r.hops);
        s.queried.push(r.queried);
      }),
    );
  }
  return s;
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : Number.NaN;
};
