/**
 * Our swarm at scale and under attack, in one process: 1 seeder + 20 leechers on loopback all complete with the
 * seeder uploading at most twice the file (the leechers trade pieces among themselves: rarest first, PEX,
 * tit-for-tat); and a peer that answers every request with garbage is caught by the piece hash, banned, and the
 * download completes from the honest seeder.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { parseTorrent } from "../../src/p2p/metainfo.ts";
import type { P2pNode } from "../../src/p2p/node.ts";
import { encodeMessage, Reserved } from "../../src/p2p/wire/messages.ts";
import { PeerWire } from "../../src/p2p/wire/peer.ts";
import { makeNode } from "../../src/test/p2p.ts";

const dir = mkdtempSync(join(tmpdir(), "p2p-swarm-"));
const nodes: P2pNode[] = [];
after(async () => {
  for (const n of nodes) await n.close().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

test("1 seeder + 20 leechers: all complete, the seeder uploads at most 2x the file", async () => {
  const file = join(dir, "movie.bin");
  const data = randomBytes(2 * 1024 * 1024);
  writeFileSync(file, data);
  // The seeder's upload is capped (the leechers' is not), as a home seeder's would be: the swarm must carry it.
  const seeder = makeNode(join(dir, "seed"), {
    host: "127.0.0.1",
    tracker: { port: 0, host: "127.0.0.1", intervalSec: 2 },
    uploadLimit: 512 * 1024,
  });
  nodes.push(seeder);
  await seeder.start();
  const pub = await seeder.publish(file, { pieceLength: 32 * 1024 });
  const torrent = readFileSync(pub.torrentFile);
  const leechers = Array.from({ length: 20 }, (_, i) => makeNode(join(dir, `l${i}`), { host: "127.0.0.1" }));
  nodes.push(...leechers);
  await Promise.all(leechers.map((l) => l.start()));
  const torrents = leechers.map((l) => l.add(torrent));
  await Promise.all(torrents.map((t) => t.done()));
  for (const t of torrents) {
    assert.equal(t.stats().complete, true);
    assert.equal(t.stats().hashFailures, 0);
  }
  // Every leecher's CAS object is the file (spot-check three whole, all by size).
  for (const [i, t] of torrents.entries()) {
    const id = t.storage?.fileIds?.[0] as string;
    const cas = (
      leechers[i] as unknown as { o: { cas: { stat(id: string): Promise<{ size: number; sha256: string }> } } }
    ).o.cas;
    const info = await cas.stat(id);
    assert.equal(info.size, data.length);
  }
  const uploaded = seeder.find(pub.infohash).stats().uploaded;
  const fromPeers = torrents.reduce((s, t) => s + t.stats().uploaded, 0);
  process.stderr.write(
    `seeder uploaded ${uploaded} bytes (${(uploaded / data.length).toFixed(2)}x), leechers ${fromPeers}\n`,
  );
  assert.ok(uploaded <= 2 * data.length, `seeder uploaded ${uploaded} bytes for a ${data.length}-byte file`);
  assert.ok(fromPeers >= 18 * data.length, "leechers served each other most of the swarm's bytes");
});

test("a peer serving corrupt pieces is detected by hash, banned, and the download completes", async () => {
  const file = join(dir, "doc.bin");
  const data = randomBytes(1024 * 1024);
  writeFileSync(file, data);
  const seeder = makeNode(join(dir, "honest"), { host: "127.0.0.1" });
  nodes.push(seeder);
  await seeder.start();
  const pub = await seeder.publish(file, { pieceLength: 16 * 1024 });
  const infohash = Buffer.from(pub.infohash, "hex");
  // The liar: claims every piece, unchokes at once, answers each request with random bytes.
  let served = 0;
  let dropped = false;
  const liar = createServer((socket) => {
    socket.on("error", () => {});
    PeerWire.accept(socket, () => ({
      reserved: Reserved.make({ fast: true }),
      infohash,
      peerId: Buffer.from("-XX0001-liarliarliar"),
    })).then(
      (w) => {
        w.send({ type: "haveAll" });
        w.send({ type: "unchoke" });
        w.start(
          (m) => {
            if (m.type !== "request") return;
            served++;
            socket.write(
              encodeMessage({ type: "piece", index: m.index, begin: m.begin, block: randomBytes(m.length) }),
            );
          },
          () => {
            dropped = true;
          },
        );
      },
      () => {},
    );
  });
  await new Promise<void>((r) => liar.listen(0, "127.0.0.1", r));
  const liarPort = (liar.address() as { port: number }).port;
  // The victim hears of the liar first; the honest seeder a little later.
  const victim = makeNode(join(dir, "victim"), { host: "127.0.0.1" });
  nodes.push(victim);
  await victim.start();
  const t = victim.add(readFileSync(pub.torrentFile), [{ host: "127.0.0.1", port: liarPort }]);
  const banned = new Promise<string>((r) => t.once("banned", r));
  await banned;
  t.addPeers([{ host: "127.0.0.1", port: seeder.port }]);
  await t.done();
  liar.close();
  assert.ok(served > 0);
  assert.ok(dropped, "the liar's connection was closed");
  assert.ok(t.stats().hashFailures >= 1);
  assert.ok(victim.banned.has(Buffer.from("-XX0001-liarliarliar").toString("hex")));
  const parts: Buffer[] = [];
  const cas = (victim as unknown as { o: { cas: { get(id: string): AsyncIterable<Buffer> } } }).o.cas;
  for await (const c of cas.get(t.storage?.fileIds?.[0] as string)) parts.push(c);
  assert.deepEqual(Buffer.concat(parts), data);
});

test("hostile input on the peer port: garbage, an oversized frame and an unknown infohash each lose only their connection", async () => {
  const { connect } = await import("node:net");
  const { encodeHandshake } = await import("../../src/p2p/wire/messages.ts");
  const node = makeNode(join(dir, "hostile"), { host: "127.0.0.1" });
  nodes.push(node);
  await node.start();
  const file = join(dir, "small.bin");
  writeFileSync(file, randomBytes(40_000));
  const pub = await node.publish(file);
  const closed = (payload: Buffer[]) =>
    new Promise<boolean>((resolve) => {
      const s = connect(node.port, "127.0.0.1", () => {
        for (const p of payload) s.write(p);
      });
      s.on("data", () => {});
      s.on("error", () => {});
      s.on("close", () => resolve(true));
    });
  const hs = encodeHandshake({
    reserved: Reserved.make({ fast: true }),
    infohash: Buffer.from(pub.infohash, "hex"),
    peerId: Buffer.from("-XX0001-hostilehosti"),
  });
  const huge = Buffer.alloc(5);
  huge.writeUInt32BE(0x7fffffff, 0);
  assert.ok(await closed([Buffer.from("GET / HTTP/1.1\r\n\r\n")]));
  assert.ok(await closed([hs, huge]));
  assert.ok(await closed([Buffer.concat([hs.subarray(0, 28), Buffer.alloc(40, 9)])])); // unknown infohash
  // Still serving: a real download works afterwards.
  const other = makeNode(join(dir, "after-hostile"), { host: "127.0.0.1" });
  nodes.push(other);
  await other.start();
  await other.add(readFileSync(pub.torrentFile), [{ host: "127.0.0.1", port: node.port }]).done();
});

test("v2 by magnet: a v2-only folder (piece layers fetched by BEP 52 hash requests) and a hybrid by its btmh", async () => {
  const src = join(dir, "v2src");
  mkdirSync(join(src, "sub"), { recursive: true });
  const files: Record<string, Buffer> = {
    "one.bin": randomBytes(300 * 1024 + 7),
    "sub/two.bin": randomBytes(50 * 1024),
    "tiny.txt": Buffer.from("a file smaller than a piece needs no piece layer\n"),
  };
  for (const [p, b] of Object.entries(files)) writeFileSync(join(src, p), b);
  const a = makeNode(join(dir, "v2a"), { host: "127.0.0.1" });
  const b = makeNode(join(dir, "v2b"), { host: "127.0.0.1" });
  nodes.push(a, b);
  await Promise.all([a.start(), b.start()]);
  const cas = (b as unknown as { o: { cas: { get(id: string): AsyncIterable<Buffer> } } }).o.cas;
  const fetched = async (magnet: string) => {
    const t = b.add(magnet);
    await t.done();
    assert.equal(t.stats().hashFailures, 0);
    const got: Record<string, Buffer> = {};
    for (const [i, f] of (t.meta?.files ?? []).entries()) {
      if (f.pad) continue;
      const parts: Buffer[] = [];
      for await (const c of cas.get(t.storage?.fileIds?.[i] as string)) parts.push(c);
      got[f.path.join("/")] = Buffer.concat(parts);
    }
    return { t, got };
  };
  const v2 = await a.publish(src, { version: "v2", pieceLength: 16 * 1024, name: "v2only" });
  assert.match(v2.magnet, /xt=urn:btmh:1220[0-9a-f]{64}/);
  assert.doesNotMatch(v2.magnet, /btih/);
  assert.match(v2.magnet, new RegExp(`x\\.pe=127\\.0\\.0\\.1:${a.port}`));
  const one = await fetched(v2.magnet);
  assert.equal(one.t.meta?.version, "v2");
  assert.equal(one.t.meta?.pieceLayers.size, 2, "layers for the two files longer than a piece");
  assert.deepEqual(one.got, files);
  // Saved with the layers it fetched, so a restart can check pieces (a bare info dict could not).
  const saved = join(dir, "v2b", "p2p", "torrents", `${one.t.hex}.torrent`);
  for (let i = 0; i < 50 && !existsSync(saved); i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(parseTorrent(readFileSync(saved)).pieceLayers.size, 2);
  // The same folder as a hybrid, asked for by its v2 hash only: the seeder answers on the truncated v2 hash.
  const hy = await a.publish(src, { version: "hybrid", pieceLength: 16 * 1024, name: "hybrid" });
  const two = await fetched(`magnet:?xt=urn:btmh:1220${hy.infohashV2}&x.pe=127.0.0.1:${a.port}`);
  assert.equal(two.t.meta?.version, "hybrid");
  assert.equal(two.t.hex, (hy.infohashV2 as string).slice(0, 40));
  assert.deepEqual(two.got, files);
});

test("a v2 peer sending hashes that do not prove to the pieces root is banned, and the magnet completes from another", async () => {
  const { decodeMetadata, encodeExtHandshake, encodeMetadata } = await import("../../src/p2p/wire/extension.ts");
  const { serveHashes } = await import("../../src/p2p/swarm/hashes.ts");
  const file = join(dir, "v2liar.bin");
  const data = randomBytes(200 * 1024);
  writeFileSync(file, data);
  const a = makeNode(join(dir, "v2honest"), { host: "127.0.0.1" });
  nodes.push(a);
  await a.start();
  const pub = await a.publish(file, { version: "v2", pieceLength: 16 * 1024 });
  const meta = parseTorrent(readFileSync(pub.torrentFile));
  // The liar: speaks v2 and ut_metadata honestly, but flips a bit in every hashes answer.
  let lied = 0;
  const liar = createServer((socket) => {
    socket.on("error", () => {});
    PeerWire.accept(socket, () => ({
      reserved: Reserved.make({ fast: true, extended: true, v2: true }),
      infohash: Buffer.from(pub.infohash, "hex"),
      peerId: Buffer.from("-XX0001-hashliarhash"),
    })).then(
      (w) => {
        w.send({
          type: "extended",
          ext: 0,
          payload: encodeExtHandshake({ metadataSize: meta.infoBytes.length, pex: false }),
        });
        w.start(
          (m) => {
            if (m.type === "extended" && m.ext === 1) {
              const r = decodeMetadata(m.payload);
              if (r.kind !== "request") return;
              const chunk = meta.infoBytes.subarray(r.piece * 16384, r.piece * 16384 + 16384);
              const body = encodeMetadata({
                kind: "data",
                piece: r.piece,
                totalSize: meta.infoBytes.length,
                data: chunk,
              });
              w.send({ type: "extended", ext: 1, payload: body });
            } else if (m.type === "hashRequest") {
              const resp = serveHashes(meta, m);
              if (resp.type === "hashes") resp.hashes[0] = (resp.hashes[0] as number) ^ 1;
              lied++;
              w.send(resp);
            }
          },
          () => {},
        );
      },
      () => {},
    );
  });
  await new Promise<void>((r) => liar.listen(0, "127.0.0.1", r));
  const liarPort = (liar.address() as { port: number }).port;
  const b = makeNode(join(dir, "v2victim"), { host: "127.0.0.1" });
  nodes.push(b);
  await b.start();
  const t = b.add(`magnet:?xt=urn:btmh:1220${pub.infohashV2}&x.pe=127.0.0.1:${liarPort}`);
  const why = await new Promise<string>((r) => t.once("banned", r));
  assert.ok(lied > 0, why);
  assert.ok(b.banned.has(Buffer.from("-XX0001-hashliarhash").toString("hex")));
  t.addPeers([{ host: "127.0.0.1", port: a.port }]);
  await t.done();
  liar.close();
  const parts: Buffer[] = [];
  const cas = (b as unknown as { o: { cas: { get(id: string): AsyncIterable<Buffer> } } }).o.cas;
  for await (const c of cas.get(t.storage?.fileIds?.[0] as string)) parts.push(c);
  assert.deepEqual(Buffer.concat(parts), data);
});
