/**
 * BitTorrent swarm (issue 15), same run, same machine, loopback:
 * 1. 20 of our leechers fetch a 32 MiB file from one seeder of ours (the swarm trades pieces), against one node:http
 *    server sending the same file to 20 concurrent clients: aggregate MiB/s and the seeder's upload.
 * 2. One download of a 1 GiB file (BENCH_P2P_BIG_MIB=256 for a quicker run) from a seeder of ours: our leecher
 *    against aria2c. Needs ~3× the file in free space under the temp dir (source, seeder and leecher CAS, then aria2c).
 * `node bench/p2p/swarm.ts` (or `npm run bench p2p`).
 */
import { randomBytes } from "node:crypto";
import { closeSync, createReadStream, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { createServer, get } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { P2pNode } from "../../src/p2p/node.ts";
import { aria2, makeNode } from "../../src/test/p2p.ts";
import { type BenchResult, round, runIfMain } from "../matrix/lib.ts";

const MiB = 1024 * 1024;

/**
 * Fresh random bytes throughout, written 4 MiB at a time (a 1 GiB file is not held in memory). Repeated content would
 * dedupe in the CAS (content-defined chunks) and spare our side writes that aria2c makes.
 */
function writeRandom(path: string, size: number): void {
  const fd = openSync(path, "w");
  try {
    for (let o = 0; o < size; o += 4 * MiB) writeSync(fd, randomBytes(Math.min(4 * MiB, size - o)));
  } finally {
    closeSync(fd);
  }
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
    const bigMiB = Number(process.env.BENCH_P2P_BIG_MIB ?? 1024);
    const big = bigMiB * MiB;
    const label = bigMiB % 1024 === 0 ? `${bigMiB / 1024} GiB` : `${bigMiB} MiB`;
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
    rmSync(join(dir, "big-leech"), { recursive: true, force: true }); // its CAS copy: disk for aria2c's
    const t2 = performance.now();
    // Async: the seeder runs in this process (spawnSync would freeze it).
    const a = await aria2(["--seed-time=0", "-d", join(dir, "aria"), pub2.torrentFile], 600_000).done;
    const ariaS = (performance.now() - t2) / 1000;
    rows.push({
      bench: "p2p download",
      metric: `${label} from one seeder, ours (into the CAS)`,
      value: round(oursS),
      unit: "s",
      baseline: `ours ${round(bigMiB / oursS)} MiB/s; aria2c from the same seeder: ${a.code === 0 ? `${round(ariaS)} s (${round(bigMiB / ariaS)} MiB/s)` : `failed (${a.code})`}`,
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
