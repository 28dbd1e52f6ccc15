/**
 * Our BitTorrent node against real clients, by .torrent with our built-in tracker (on this machine's own
 * address): transmission-daemon and aria2c download what we seed, we download what each of them seeds, and a
 * second node of ours fetches a magnet (x.pe = our seeder) through ut_metadata.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { P2pNode } from "../../src/p2p/node.ts";
import { until } from "../../src/test/cli.ts";
import { aria2, localAddress, makeNode, startTransmission, type Transmission } from "../../src/test/p2p.ts";

const dir = mkdtempSync(join(tmpdir(), "p2p-interop-"));
const ip = localAddress();
// Transmission 3.00 ignores peers at 127.x that a tracker names, so the tracker hands out this machine's own address.
const noLan =
  ip === "127.0.0.1" && "this machine has no IPv4 address but loopback, and transmission ignores 127.x peers";
let ours: P2pNode;
let tr: Transmission;
const cleanup: (() => Promise<void>)[] = [];

before(async () => {
  ours = makeNode(join(dir, "ours"), { tracker: { port: 0, host: "0.0.0.0", publicHost: ip, intervalSec: 5 } });
  await ours.start();
  tr = await startTransmission(join(dir, "tr"));
  cleanup.push(
    () => tr.stop(),
    () => ours.close(),
  );
});
after(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

async function casBytes(node: P2pNode, id: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of (node as unknown as { o: { cas: { get(id: string): AsyncIterable<Buffer> } } }).o.cas.get(id))
    parts.push(c);
  return Buffer.concat(parts);
}

test("transmission and aria2c download what we seed; a magnet fetch gets the info dict by ut_metadata", {
  skip: noLan,
}, async () => {
  const src = join(dir, "ours-src");
  mkdirSync(join(src, "sub"), { recursive: true });
  writeFileSync(join(src, "a.bin"), randomBytes(1024 * 1024 + 3));
  writeFileSync(join(src, "sub", "b.bin"), randomBytes(300 * 1024));
  const pub = await ours.publish(src, { pieceLength: 32 * 1024 });
  const torrent = readFileSync(pub.torrentFile);
  // transmission: add the .torrent over RPC.
  await tr.remote("-a", pub.torrentFile);
  // aria2c at the same time.
  const aDir = join(dir, "aria-dl");
  const aria = aria2(["--seed-time=0", "-d", aDir, pub.torrentFile]);
  // A second node of ours by magnet only (no tracker in the link, just x.pe).
  const other = makeNode(join(dir, "other"));
  await other.start();
  cleanup.push(() => other.close());
  const magnet = pub.magnet.replace(/&tr=[^&]*/g, "");
  assert.match(magnet, /x\.pe=127\.0\.0\.1:\d+/);
  const byMagnet = other.add(magnet);
  await byMagnet.done();
  assert.ok(byMagnet.meta?.infoBytes.equals(parseInfoBytes(torrent)));
  const ids = byMagnet.storage?.fileIds ?? [];
  assert.deepEqual(await casBytes(other, ids[0] as string), readFileSync(join(src, "a.bin")));

  const r = await aria.done;
  assert.equal(r.code, 0, r.out);
  for (const f of ["a.bin", join("sub", "b.bin")])
    assert.deepEqual(readFileSync(join(aDir, "ours-src", f)), readFileSync(join(src, f)), `aria2c ${f}`);
  await until("transmission to finish", async () => (await tr.remote("-l")).includes("100%"), 30_000).catch(
    async (e) => {
      throw new Error(`${e.message}: ${await tr.remote("-l")} ${await tr.remote("-t", "all", "-i", "-it", "-ip")}`);
    },
  );
  for (const f of ["a.bin", join("sub", "b.bin")])
    assert.deepEqual(
      readFileSync(join(dir, "tr", "dl", "ours-src", f)),
      readFileSync(join(src, f)),
      `transmission ${f}`,
    );
});

function parseInfoBytes(torrent: Buffer): Buffer {
  const i = torrent.indexOf("4:infod");
  return torrent.subarray(i + 6, torrent.length - 1);
}

test("we download what transmission seeds and what aria2c seeds", { skip: noLan }, async () => {
  const trackerUrl = ours.trackerUrl as string;
  // transmission seeds a file it made the .torrent for.
  mkdirSync(join(dir, "tr", "dl"), { recursive: true });
  const tSrc = join(dir, "tr", "dl", "from-tr.bin");
  writeFileSync(tSrc, randomBytes(700 * 1024));
  const tTorrent = join(dir, "from-tr.torrent");
  execFileSync("transmission-create", ["-o", tTorrent, "-t", trackerUrl, "-s", "32", tSrc], { stdio: "ignore" });
  await tr.remote("-a", tTorrent, "--download-dir", join(dir, "tr", "dl"));
  // aria2c seeds another (our .torrent format does not matter to it: transmission-create's again).
  const aSrcDir = join(dir, "aria-seed");
  mkdirSync(aSrcDir);
  writeFileSync(join(aSrcDir, "from-aria.bin"), randomBytes(600 * 1024));
  const aTorrent = join(dir, "from-aria.torrent");
  execFileSync("transmission-create", ["-o", aTorrent, "-t", trackerUrl, "-s", "32", join(aSrcDir, "from-aria.bin")], {
    stdio: "ignore",
  });
  const seeder = aria2(
    ["--seed-ratio=0.0", "--seed-time=5", "--check-integrity=true", "-d", aSrcDir, aTorrent],
    55_000,
  );
  cleanup.push(async () => {
    seeder.kill();
    await seeder.done;
  });

  const leech = makeNode(join(dir, "leech"));
  await leech.start();
  cleanup.push(() => leech.close());
  const a = leech.add(readFileSync(tTorrent));
  const b = leech.add(readFileSync(aTorrent));
  await Promise.all([a.done(), b.done()]);
  assert.deepEqual(await casBytes(leech, a.storage?.fileIds?.[0] as string), readFileSync(tSrc));
  assert.deepEqual(
    await casBytes(leech, b.storage?.fileIds?.[0] as string),
    readFileSync(join(aSrcDir, "from-aria.bin")),
  );
  // Our seeder node is on the same tracker: make sure the pieces came from the real clients, not from it.
  assert.equal(ours.torrents.has(a.hex) || ours.torrents.has(b.hex), false);
});
