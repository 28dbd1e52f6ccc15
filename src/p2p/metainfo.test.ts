import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { encode } from "./bencode.ts";
import { createTorrentFrom } from "./create.ts";
import { formatMagnet, magnetOf, parseMagnet } from "./magnet.ts";
import { BLOCK, FileMerkle, pieceRoot, rootOf } from "./merkle.ts";
import { parseTorrent, pieceSize, requestableSize, verifyPiece } from "./metainfo.ts";

const dir = mkdtempSync(join(tmpdir(), "p2p-meta-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const file = join(dir, "clip.bin");
writeFileSync(file, randomBytes(300 * 1024 + 123));
const folder = join(dir, "album");
mkdirSync(join(folder, "sub"), { recursive: true });
writeFileSync(join(folder, "a.txt"), randomBytes(70_000));
writeFileSync(join(folder, "sub", "b.bin"), randomBytes(40_000));
writeFileSync(join(folder, "z.bin"), randomBytes(5));

function transmissionHash(path: string, pieceKiB: number, extra: string[] = []): string {
  const out = join(dir, `t-${Math.random()}.torrent`);
  execFileSync("transmission-create", ["-s", String(pieceKiB), "-o", out, ...extra, path], { stdio: "ignore" });
  const show = execFileSync("transmission-show", [out]).toString();
  return /Hash:\s*([0-9a-f]{40})/.exec(show)?.[1] ?? "";
}

test("v1 infohash of a file and of a folder equals transmission-create's", async () => {
  const one = await createTorrentFrom(file, { pieceLength: 32 * 1024, private: false });
  assert.equal(one.meta.infohashV1?.toString("hex"), transmissionHash(file, 32));
  const many = await createTorrentFrom(folder, { pieceLength: 16 * 1024, private: false });
  assert.equal(many.meta.infohashV1?.toString("hex"), transmissionHash(folder, 16));
  const priv = await createTorrentFrom(file, { pieceLength: 32 * 1024, private: true, trackers: ["http://t/a"] });
  assert.equal(priv.meta.private, true);
  assert.equal(priv.meta.infohashV1?.toString("hex"), transmissionHash(file, 32, ["-p", "-t", "http://t/a"]));
  assert.deepEqual(priv.meta.trackers, [["http://t/a"]]);
  assert.equal(many.meta.files.length, 3);
  assert.deepEqual(many.meta.files[1]?.path, ["sub", "b.bin"]);
});

test("transmission parses ours: same hash, name, piece count", async () => {
  const { torrent, meta } = await createTorrentFrom(folder, {
    pieceLength: 16 * 1024,
    trackers: ["http://x/announce"],
  });
  const p = join(dir, "ours.torrent");
  writeFileSync(p, torrent);
  const show = execFileSync("transmission-show", [p]).toString();
  assert.match(show, new RegExp(`Hash: ${meta.infohashV1?.toString("hex")}`));
  assert.match(show, new RegExp(`Piece Count: ${meta.pieceCount}`));
});

test("every piece of v1, v2 and hybrid torrents verifies, and a flipped byte fails", async () => {
  const space = (m: Awaited<ReturnType<typeof createTorrentFrom>>["meta"], src: string) => {
    const buf = Buffer.alloc(m.spaceLength);
    for (const f of m.files) if (!f.pad) readFileSync(join(src, ...f.path)).copy(buf, f.offset);
    return buf;
  };
  for (const version of ["v1", "v2", "hybrid"] as const) {
    for (const src of [file, folder]) {
      const { meta } = await createTorrentFrom(src, { version, pieceLength: 32 * 1024 });
      assert.equal(meta.version, version);
      const buf = src === file ? readFileSync(file) : space(meta, folder);
      for (let i = 0; i < meta.pieceCount; i++) {
        const piece = buf.subarray(i * meta.pieceLength, i * meta.pieceLength + pieceSize(meta, i));
        assert.ok(verifyPiece(meta, i, piece), `${version} ${src} piece ${i}`);
        const bad = Buffer.from(piece);
        bad[0] = (bad[0] ?? 0) ^ 1;
        assert.ok(!verifyPiece(meta, i, bad));
      }
      // A peer may ask for a whole piece at a v2-only file's short end (libtorrent 2.0.8's pad space), else no more.
      for (let i = 0; i < meta.pieceCount; i++)
        assert.equal(requestableSize(meta, i), version === "v2" ? meta.pieceLength : pieceSize(meta, i));
      if (version !== "v1") assert.equal(meta.infohashV2?.length, 32);
      if (version === "hybrid" && src === folder) assert.ok(meta.files.some((f) => f.pad));
    }
  }
});

test("merkle: a file's root over blocks equals the root over its piece layer", () => {
  const data = randomBytes(5 * BLOCK + 100);
  const fm = new FileMerkle(2 * BLOCK);
  fm.update(data.subarray(0, 1000));
  fm.update(data.subarray(1000));
  const { root, layer } = fm.finish();
  assert.equal(layer.length, 3);
  assert.ok(layer[2]?.equals(pieceRoot(data.subarray(4 * BLOCK), 2 * BLOCK)));
  const leaves = [];
  for (let o = 0; o < data.length; o += BLOCK) leaves.push(pieceRoot(data.subarray(o, o + BLOCK), BLOCK));
  assert.ok(root.equals(rootOf(leaves, 8)));
});

test("malformed torrents are refused with AMI_INVALID_INPUT", () => {
  const bad = [
    Buffer.from("garbage"),
    encode({ announce: "x" }),
    encode({ info: { name: "../x", "piece length": 16384, length: 1, pieces: Buffer.alloc(20) } }),
    encode({ info: { name: "x", "piece length": 16384, length: 1, pieces: Buffer.alloc(19) } }),
    encode({ info: { name: "x", "piece length": 16384, length: 99999, pieces: Buffer.alloc(20) } }),
    encode({
      info: { name: "x", "piece length": 16384, files: [{ length: 1, path: [".."] }], pieces: Buffer.alloc(20) },
    }),
  ];
  for (const b of bad) assert.throws(() => parseTorrent(b), { code: "AMI_INVALID_INPUT" });
});

test("magnet links round-trip (btih hex + base32, btmh, dn, tr, x.pe) and bad ones are refused", async () => {
  const { meta } = await createTorrentFrom(file, { version: "hybrid", trackers: ["http://127.0.0.1:1/announce"] });
  const uri = magnetOf(meta, [
    { host: "127.0.0.1", port: 6881 },
    { host: "::1", port: 7 },
  ]);
  const m = parseMagnet(uri);
  assert.ok(m.infohashV1?.equals(meta.infohashV1 as Buffer));
  assert.ok(m.infohashV2?.equals(meta.infohashV2 as Buffer));
  assert.equal(m.name, "clip.bin");
  assert.deepEqual(m.trackers, ["http://127.0.0.1:1/announce"]);
  assert.deepEqual(m.peers, [
    { host: "127.0.0.1", port: 6881 },
    { host: "::1", port: 7 },
  ]);
  assert.equal(formatMagnet(m), uri);
  const b32 = parseMagnet("magnet:?xt=urn:btih:MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U");
  assert.equal(b32.infohashV1?.toString("hex"), Buffer.from("abcdefghijklmnopqrst").toString("hex"));
  for (const u of ["http://x", "magnet:?dn=x", "magnet:?xt=urn:btih:123", "magnet:?xt=urn:btmh:1114aa"])
    assert.throws(() => parseMagnet(u), { code: "AMI_INVALID_INPUT" });
});
