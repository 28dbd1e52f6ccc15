/**
 * Our DHT against a real mainline-DHT client on loopback: aria2c (Debian `aria2`) joins through our node
 * (`--dht-entry-point`), pings and find_nodes it, and for a trackerless torrent (no announce URL, LPD and PEX off, so
 * the DHT is its only source of peers):
 * - aria2's get_peers finds the peer our DHT holds (a TCP listener of this test, announced by our second node),
 *   and aria2 connects to it;
 * - aria2's announce_peer (token-checked) is found by a get_peers lookup from our other node.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { encode } from "../../src/p2p/bencode.ts";
import { Dht } from "../../src/p2p/dht/dht.ts";
import { installed } from "../../src/test/p2p.ts";

const hasAria2 = installed("aria2c");

/** A single-file v1 torrent with no announce URL: peers can only come from the DHT. */
function torrent(dir: string): Buffer {
  const data = randomBytes(64 * 1024);
  const pieces: Buffer[] = [];
  for (let i = 0; i < data.length; i += 16384)
    pieces.push(
      createHash("sha1")
        .update(data.subarray(i, i + 16384))
        .digest(),
    );
  const info = { name: "dht-only.bin", length: data.length, "piece length": 16384, pieces: Buffer.concat(pieces) };
  writeFileSync(join(dir, "t.torrent"), encode({ info, "creation date": 1 }));
  return createHash("sha1").update(encode(info)).digest();
}

async function freeUdpTcpPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

test("aria2c's DHT talks to ours: it finds the peer we hold, and we find the peer it announces", {
  skip: !hasAria2 && "aria2c is not installed (Debian: aria2)",
  timeout: 60_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), "dht-aria2-"));
  const a = new Dht({ host: "127.0.0.1" });
  const b = new Dht({ host: "127.0.0.1" });
  const conns: Buffer[] = [];
  const peer = createServer((s) => {
    const chunks: Buffer[] = [];
    s.on("data", (d) => chunks.push(d));
    s.on("error", () => {});
    s.on("close", () => conns.push(Buffer.concat(chunks)));
    setTimeout(() => s.destroy(), 300);
  });
  let aria: ChildProcess | undefined;
  try {
    await a.start();
    b.o.bootstrap = [`127.0.0.1:${a.address?.port}`];
    await b.start();
    assert.ok((await b.bootstrap()) >= 1);
    const ih = torrent(dir);
    await new Promise<void>((r) => peer.listen(0, "127.0.0.1", r));
    const peerPort = (peer.address() as AddressInfo).port;
    assert.ok((await b.announceCount(ih, peerPort)) >= 1, "our announce was accepted by our other node");

    const ariaPort = await freeUdpTcpPort();
    const ariaDhtPort = await freeUdpTcpPort();
    aria = spawn(
      "aria2c",
      [
        "--enable-dht=true",
        `--dht-entry-point=127.0.0.1:${a.address?.port}`,
        `--dht-listen-port=${ariaDhtPort}`,
        `--dht-file-path=${join(dir, "dht.dat")}`,
        `--listen-port=${ariaPort}`,
        `--dir=${join(dir, "dl")}`,
        "--bt-enable-lpd=false",
        "--enable-peer-exchange=false",
        "--seed-time=0",
        "--summary-interval=0",
        "--console-log-level=warn",
        join(dir, "t.torrent"),
      ],
      { stdio: ["ignore", "ignore", "inherit"] },
    );

    let ariaFound = false;
    const deadline = Date.now() + 45_000;
    while (Date.now() < deadline && !(ariaFound && conns.length > 0)) {
      await new Promise((r) => setTimeout(r, 1000));
      if (!ariaFound)
        for await (const p of b.lookup(ih)) if (p.host === "127.0.0.1" && p.port === ariaPort) ariaFound = true;
    }
    const q = a.stats().queriesIn;
    assert.ok(q.ping + q.find_node >= 1, `aria2 pinged / find_noded our node: ${JSON.stringify(q)}`);
    assert.ok(q.get_peers >= 1, "aria2 asked our node get_peers");
    assert.ok(
      conns.length > 0,
      "aria2 connected to the peer it could only have learned from our DHT (no tracker, no LPD, no PEX)",
    );
    // aria2 opens with an MSE (encrypted) handshake and retries in plain; a plain one names the infohash.
    const plain = conns.find((c) => c[0] === 19 && c.subarray(1, 20).toString() === "BitTorrent protocol");
    if (plain) assert.ok(plain.subarray(28, 48).equals(ih), "the plain handshake names our torrent");
    assert.ok(ariaFound, `our lookup found aria2's announce (127.0.0.1:${ariaPort})`);
    assert.ok(a.stats().queriesIn.announce_peer >= 2, "aria2's announce_peer passed the token check");
    assert.equal(a.stats().badTokens, 0);
  } finally {
    aria?.kill();
    peer.close();
    await a.stop();
    await b.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
