/**
 * BitTorrent swarm (issue 15), same run, same machine, loopback:
 * 1. 20 of our leechers fetch a 32 MiB file from one seeder of ours (the swarm trades pieces), against one node:http
 *    server sending the same file to 20 concurrent clients: aggregate MiB/s and the seeder's upload.
 * 2. One download of a 256 MiB file (not 1 GiB: the shared machine's time budget) from the same seeder: our
 *    leecher against aria2c.
 * `node bench/p2p/swarm.ts` (or `npm run bench p2p`).
 */
import { randomBytes } from "node:crypto";
import { createReadStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, get } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { P2pNode } from "../../src/p2p/node.ts";
import { aria2, makeNode } from "../../src/test/p2p.ts";
import { type BenchResult, round, runIfMain } from "../matrix/lib.ts";

const MiB = 1024 * 1024;

function writeRandom(path: string, size: number): void {
  const chunk = randomBytes(4 * MiB);
  const parts: Buffer[] = [];
  for (let o = 0; o < size; o += chunk.length) parts.push(chunk.subarray(0, Math.min(chunk.length, size - o)));
  // Distinct pieces matter (identical ones would dedupe in the CAS): salt every 4 MiB.
  writeFileSync(
    path,
    Buffer.concat(parts.map((p, i) => Buffer.concat([Buffer.from(String(i).padStart(16)), p.subarray(16)]))),
  );
}

async function httpBaseline(file: string, clients: number): Promise<number> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/octet-stream" });
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  const t = performance.now();
  await Promise.all(
    Array.from(
      { length: clients },
      () =>
        new Promise<void>((resolve, reject) =>
          get(`http://127.0.0.1:${port}/`, (res) => {
            res.on("data", () => {});
            res.on("end", resolve);
          }).on("error", reject),
        ),
    ),
  );
  const s = (performance.now() - t) / 1000;
  server.close();
  return s;
}

/** A seeder of ours with the built-in tracker on loopback, started and kept in `nodes` for closing. */
async function startSeeder(dir: string, nodes: P2pNode[]): Promise<P2pNode> {
  const seeder = makeNode(dir, { host: "127.0.0.1", tracker: { port: 0, host: "127.0.0.1", intervalSec: 2 } });
  nodes.push(seeder);
  await seeder.start();
  return seeder;
}

export async function run(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), "bench-p2p-"));
  const nodes: P2pNode[] = [];
  const rows: BenchResult[] = [];
  try {
    // 1. swarm vs HTTP
    const size = 32 * MiB;
    const file = join(dir, "swarm.bin");
    writeRandom(file, size);
    const seeder = await startSeeder(join(dir, "seed"), nodes);
    const pub = await seeder.publish(file, { pieceLength: 256 * 1024 });
    const torrent = readFileSync(pub.torrentFile);
    const leechers = Array.from({ length: 20 }, (_, i) => makeNode(join(dir, `l${i}`), { host: "127.0.0.1" }));
    nodes.push(...leechers);
    await Promise.all(leechers.map((l) => l.start()));
    const t0 = performance.now();
    await Promise.all(leechers.map((l) => l.add(torrent).done()));
    const swarmS = (performance.now() - t0) / 1000;
    const seedUp = seeder.find(pub.infohash).stats().uploaded;
    const httpS = await httpBaseline(file, 20);
    rows.push({
      bench: "p2p swarm",
      metric: "20 leechers x 32 MiB, aggregate",
      value: round((20 * size) / MiB / swarmS),
      unit: "MiB/s",
      baseline: `node:http to 20 clients: ${round((20 * size) / MiB / httpS)} MiB/s (${round(httpS)} s vs ${round(swarmS)} s)`,
      target: "",
      met: null,
    });
    rows.push({
      bench: "p2p swarm",
      metric: "seeder upload / file size",
      value: round(seedUp / size),
      unit: "x",
      baseline: "node:http server: 20 x",
      target: "<= 2 x",
      met: seedUp <= 2 * size,
    });
    for (const n of nodes.splice(0)) await n.close();

    // 2. one big download: ours vs aria2c from the same seeder
    const big = 256 * MiB;
    const bigFile = join(dir, "big.bin");
    writeRandom(bigFile, big);
    const seed2 = await startSeeder(join(dir, "seed2"), nodes);
    const pub2 = await seed2.publish(bigFile, { pieceLength: 1024 * 1024 });
    const leech = makeNode(join(dir, "big-leech"), { host: "127.0.0.1" });
    nodes.push(leech);
    await leech.start();
    const t1 = performance.now();
    await leech.add(readFileSync(pub2.torrentFile)).done();
    const oursS = (performance.now() - t1) / 1000;
    await leech.close();
    const t2 = performance.now();
    // Async: the seeder runs in this process (spawnSync would freeze it).
    const a = await aria2(["--seed-time=0", "-d", join(dir, "aria"), pub2.torrentFile], 600_000).done;
    const ariaS = (performance.now() - t2) / 1000;
    rows.push({
      bench: "p2p download",
      metric: "256 MiB from one seeder, ours (into the CAS)",
      value: round(oursS),
      unit: "s",
      baseline: `aria2c from the same seeder: ${a.code === 0 ? `${round(ariaS)} s` : `failed (${a.code})`}`,
      target: "",
      met: null,
    });
  } finally {
    for (const n of nodes) await n.close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

await runIfMain(import.meta, run);
