/**
 * transmission-daemon (libtransmission 3.00, jech's dht.c) against our DHT, by magnet only: no tracker anywhere,
 * magnets that name neither a tracker (tr) nor a peer (x.pe), LPD and PEX off, so the DHT is the only way to meet.
 * - transmission is given our seeder's bare magnet, finds our node through the DHT and downloads the file;
 * - transmission seeds a trackerless torrent of its own, announces it in our DHT, and a second node of ours
 *   fetches its bare magnet.
 * Our nodes are built as the p2p service builds them (dhtFor: DHT on the peer port, joined through
 * p2p.bootstrapNodes), next to eight plain DHT nodes of ours that make up the network.
 *
 * What transmission needs (tr-dht.c, dht.c): its DHT drops 127.x nodes as "martian", so everything runs on this
 * machine's own address; it only searches once its table holds more than 8 nodes, 4 of them having answered
 * (getstatus: below that it is "broken" and tr_dhtAnnounce waits). It pings the nodes of the dht.dat in its config
 * dir one every 1-3 s (dht.bootstrap lines wait 7-22 s each), and adds the nodes that query it, so: dht.dat names
 * the eight, and every node of ours pings it once it is up.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { configSchema } from "../../src/config.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { encode } from "../../src/p2p/bencode.ts";
import { Dht } from "../../src/p2p/dht/dht.ts";
import { type DhtSource, dhtFor } from "../../src/p2p/dht-source.ts";
import { parseTorrent } from "../../src/p2p/metainfo.ts";
import type { P2pNode } from "../../src/p2p/node.ts";
import { freePort, until } from "../../src/test/cli.ts";
import { installed, localAddress, makeNode, startTransmission, type Transmission } from "../../src/test/p2p.ts";

const hasTransmission = installed("transmission-daemon");
const ip = localAddress();
const skip = !hasTransmission
  ? "transmission-daemon is not installed (Debian: transmission-daemon)"
  : ip === "127.0.0.1" &&
    "this machine has no IPv4 address but loopback, and transmission's DHT drops 127.x nodes as martian";

const dir = mkdtempSync(join(tmpdir(), "p2p-dht-tr-"));
const cleanup: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

/** A node of ours as the p2p service makes it: its DHT on the peer port (UDP), joined through `entry`. */
async function serviceNode(name: string, entry: string): Promise<{ node: P2pNode; dht: DhtSource }> {
  const port = await freePort();
  const config = configSchema.parse({
    p2p: { enabled: true, host: "0.0.0.0", port, tracker: { enabled: false }, bootstrapNodes: [entry] },
  });
  const dht = dhtFor(config, { stateDir: join(dir, name, "dht"), log: silentLogger, bootstrap: false });
  await dht.dht.start();
  cleanup.push(() => dht.dht.stop());
  const node = makeNode(join(dir, name), {
    port,
    sources: [dht],
    dhtPort: dht.dht.address?.port,
    onDhtPort: (p) => dht.heardPort(p),
  });
  await node.start();
  cleanup.push(() => node.close());
  await dht.dht.bootstrap();
  return { node, dht };
}

async function casBytes(node: P2pNode, id: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of (node as unknown as { o: { cas: { get(id: string): AsyncIterable<Buffer> } } }).o.cas.get(id))
    parts.push(c);
  return Buffer.concat(parts);
}

test("transmission fetches our magnet through our DHT, and we fetch its magnet through our DHT", {
  skip,
  timeout: 60_000,
}, async (t) => {
  const t0 = Date.now();
  // The network: eight plain nodes of ours on this machine's address.
  const net: Dht[] = [];
  for (let i = 0; i < 8; i++) {
    const d = new Dht({ host: "0.0.0.0", bootstrap: net.length ? [`${ip}:${net[0]?.address?.port}`] : [] });
    await d.start();
    cleanup.push(() => d.stop());
    net.push(d);
  }
  const entry = `${ip}:${net[0]?.address?.port}`;
  for (const d of net.slice(1)) await d.bootstrap();
  await net[0]?.bootstrap();

  // Our seeder publishes; its DHT announces the torrent (the first discovery round of a published torrent).
  const seed = await serviceNode("seed", entry);
  const leech = await serviceNode("leech", entry);
  const data = randomBytes(700 * 1024 + 77);
  const src = join(dir, "ours.bin");
  writeFileSync(src, data);
  const pub = await seed.node.publish(src, { version: "v1", pieceLength: 32 * 1024 });
  await until("our seeder's DHT announce", async () => seed.dht.dht.stats().announces >= 1, 10_000);

  // transmission: DHT on, its dht.dat naming the eight; it seeds a trackerless torrent of its own.
  const compact = Buffer.concat(
    net.map((d) => {
      const b = Buffer.alloc(6);
      Buffer.from(ip.split(".").map(Number)).copy(b);
      b.writeUInt16BE(d.address?.port ?? 0, 4);
      return b;
    }),
  );
  const tr: Transmission = await startTransmission(join(dir, "tr"), {
    settings: { "dht-enabled": true, "lpd-enabled": false, "pex-enabled": false },
    files: { "dht.dat": encode({ nodes: compact }) },
  });
  cleanup.push(() => tr.stop());
  const trDht = { host: ip, port: tr.peer };
  const everyone = [...net, seed.dht.dht, leech.dht.dht];
  await until(
    "transmission's DHT to answer a ping",
    async () => {
      const answers = await Promise.all(
        everyone.map((d) =>
          d.query(trDht, "ping", {}).then(
            () => 1,
            () => 0,
          ),
        ),
      );
      return answers.reduce((a: number, b) => a + b, 0) === everyone.length;
    },
    10_000,
  );
  const trDl = join(dir, "tr", "dl");
  mkdirSync(trDl, { recursive: true });
  const theirs = randomBytes(600 * 1024 + 5);
  writeFileSync(join(trDl, "theirs.bin"), theirs);
  const tTorrent = join(dir, "theirs.torrent");
  execFileSync("transmission-create", ["-o", tTorrent, "-s", "32", join(trDl, "theirs.bin")], { stdio: "ignore" });
  const tMeta = parseTorrent(readFileSync(tTorrent));
  assert.deepEqual(tMeta.trackers, [], "no tracker in transmission's torrent");
  await tr.remote("-a", tTorrent, "--download-dir", trDl);

  // Bare magnets: the infohash and nothing else.
  const ourMagnet = `magnet:?xt=urn:btih:${pub.infohash}`;
  await tr.remote("-a", ourMagnet);
  const theirMagnet = `magnet:?xt=urn:btih:${(tMeta.infohashV1 as Buffer).toString("hex")}`;
  const fetched = leech.node.add(theirMagnet);

  const info = async () => `${await tr.remote("-l")}\n${await tr.remote("-t", "all", "-i", "-ip")}`;
  await until(
    "transmission to download our file",
    async () => {
      await new Promise((r) => setTimeout(r, 400)); // one transmission-remote run every ½ s, not every 100 ms
      return (await tr.remote("-l")).match(/100%/g)?.length === 2;
    },
    45_000,
  ).catch(async (e) => {
    throw new Error(`${e.message}: ${await info()}`);
  });
  t.diagnostic(`transmission had our file after ${Date.now() - t0} ms`);
  assert.deepEqual(readFileSync(join(trDl, "ours.bin")), data, "transmission's copy of our file");
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    fetched.done(),
    new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error("our magnet fetch of transmission's torrent did not finish")),
        50_000 - (Date.now() - t0),
      );
    }),
  ]).finally(() => clearTimeout(timer));
  t.diagnostic(`we had transmission's file after ${Date.now() - t0} ms`);
  assert.deepEqual(await casBytes(leech.node, fetched.storage?.fileIds?.[0] as string), theirs);

  // transmission's own announce_peer is in our DHT: a fresh walk from one of the eight finds its peer port.
  // transmission announces on its own schedule (after its first get_peers walk for the torrent has ended), which
  // on a slow machine can come after both downloads: walk again until it is there, for up to 20 s.
  const want = `${ip}:${tr.peer}`;
  let found: string[] = [];
  const announcedBy = Date.now() + 20_000;
  for (;;) {
    found = [];
    for await (const p of (net[3] as Dht).lookup(tMeta.infohashV1 as Buffer, AbortSignal.timeout(5000)))
      found.push(`${p.host}:${p.port}`);
    if (found.includes(want) || Date.now() > announcedBy) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  assert.ok(found.includes(want), `transmission announced itself in our DHT: ${found.join(", ")}`);
  t.diagnostic((await tr.remote("-t", "all", "-ip")).trim());
});
