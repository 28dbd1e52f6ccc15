import assert from "node:assert/strict";
import { test } from "node:test";
import { encode } from "../bencode.ts";
import {
  decodeCompact,
  decodeExtHandshake,
  decodeMetadata,
  decodePex,
  encodeCompact,
  encodeExtHandshake,
  encodeMetadata,
  encodePex,
} from "./extension.ts";
import {
  Bits,
  decodeHandshake,
  encodeHandshake,
  encodeMessage,
  Framer,
  MAX_FRAME,
  type Message,
  Reserved,
} from "./messages.ts";

const all: Message[] = [
  { type: "keepalive" },
  { type: "choke" },
  { type: "unchoke" },
  { type: "interested" },
  { type: "notInterested" },
  { type: "have", index: 7 },
  { type: "bitfield", bits: Buffer.from([0xf0, 0x80]) },
  { type: "request", index: 1, begin: 16384, length: 16384 },
  { type: "piece", index: 2, begin: 0, block: Buffer.from("hello") },
  { type: "cancel", index: 1, begin: 0, length: 100 },
  { type: "port", port: 6881 },
  { type: "suggest", index: 3 },
  { type: "haveAll" },
  { type: "haveNone" },
  { type: "reject", index: 4, begin: 0, length: 16384 },
  { type: "allowedFast", index: 5 },
  { type: "extended", ext: 1, payload: Buffer.from("d1:ai1ee") },
  { type: "hashRequest", root: Buffer.alloc(32, 7), base: 1, index: 8, length: 4, proofLayers: 3 },
  {
    type: "hashes",
    root: Buffer.alloc(32, 7),
    base: 1,
    index: 8,
    length: 4,
    proofLayers: 3,
    hashes: Buffer.alloc(6 * 32, 9),
  },
  { type: "hashReject", root: Buffer.alloc(32, 8), base: 0, index: 0, length: 2, proofLayers: 0 },
  // One hash and 2 proof layers: its sibling's and two more uncles (libtorrent's count).
  {
    type: "hashes",
    root: Buffer.alloc(32, 7),
    base: 0,
    index: 5,
    length: 1,
    proofLayers: 2,
    hashes: Buffer.alloc(4 * 32),
  },
];

test("every message round-trips, also when the stream arrives one byte at a time", () => {
  const stream = Buffer.concat(all.map(encodeMessage));
  assert.deepEqual(new Framer().push(stream), all);
  const f = new Framer();
  const got: Message[] = [];
  for (const b of stream) got.push(...f.push(Buffer.from([b])));
  assert.deepEqual(got, all);
  assert.equal(f.pending, 0);
});

test("handshake and reserved bits (DHT, fast, extension protocol, v2)", () => {
  assert.equal(Reserved.make({ v2: true })[7], 0x10);
  assert.ok(!Reserved.v2(Reserved.make({ dht: true, fast: true })));
  const reserved = Reserved.make({ dht: true, fast: true, extended: true, v2: true });
  const h = { reserved, infohash: Buffer.alloc(20, 1), peerId: Buffer.alloc(20, 2) };
  const b = encodeHandshake(h);
  assert.equal(b.length, 68);
  const back = decodeHandshake(b);
  assert.ok(Reserved.dht(back.reserved) && Reserved.fast(back.reserved) && Reserved.extended(back.reserved));
  assert.ok(Reserved.v2(back.reserved));
  assert.throws(() => decodeHandshake(Buffer.concat([Buffer.from("\x13BitTorrent protocoX"), b.subarray(20)])), {
    code: "AMI_INVALID_INPUT",
  });
});

/** A BEP 52 header (root zeros) plus `extra` bytes. */
function hashHeader(base: number, index: number, length: number, proofLayers: number, extra = 0): Buffer {
  const b = Buffer.alloc(48 + extra);
  b.writeUInt32BE(base, 32);
  b.writeUInt32BE(index, 36);
  b.writeUInt32BE(length, 40);
  b.writeUInt32BE(proofLayers, 44);
  return b;
}

test("malformed frames are refused: oversized, wrong length for the id, zero or huge requests", () => {
  const frame = (len: number, id: number, payload: Buffer = Buffer.alloc(0)) => {
    const h = Buffer.alloc(5);
    h.writeUInt32BE(len, 0);
    h[4] = id;
    return Buffer.concat([h, payload]);
  };
  const bad = [
    frame(MAX_FRAME + 1, 7),
    frame(0xffffffff, 5),
    frame(2, 0, Buffer.from([1])), // choke with a payload
    frame(4, 4, Buffer.alloc(3)), // have with 3 bytes
    frame(13, 6, Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])), // request for 0 bytes
    frame(13, 6, Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0])), // request for 64 KiB
    frame(5, 7, Buffer.alloc(4)), // piece without its begin
    frame(1, 20), // extended without an id
    frame(48, 21, Buffer.alloc(47)), // hash request one byte short
    frame(50, 21, hashHeader(0, 0, 4, 0, 1)), // hash request with a trailing byte
    frame(49, 21, hashHeader(0, 0, 3, 0)), // length not a power of two
    frame(49, 21, hashHeader(0, 0, 8192, 0)), // more hashes than a frame may carry
    frame(49, 21, hashHeader(0, 2, 4, 0)), // index not a multiple of the length
    frame(49, 23, hashHeader(0, 0, 4, 33)), // too many proof layers
    frame(49 + 3 * 32, 22, hashHeader(0, 0, 4, 0, 3 * 32)), // fewer hashes than asked
    frame(49 + 6 * 32, 22, hashHeader(0, 0, 4, 1, 6 * 32)), // more uncles than proof layers
    frame(49 + 40, 22, hashHeader(0, 0, 1, 0, 40)), // not whole hashes
  ];
  for (const b of bad) assert.throws(() => new Framer().push(b), { code: "AMI_INVALID_INPUT" }, b.toString("hex"));
  // Unknown ids are skipped, not fatal (BEP 3).
  assert.deepEqual(new Framer().push(frame(1, 99)), [{ type: "unknown", id: 99 }]);
});

test("bitfields must have the exact size and clear spare bits", () => {
  const b = Bits.make(10);
  Bits.set(b, 0);
  Bits.set(b, 9);
  assert.ok(Bits.valid(b, 10) && Bits.get(b, 9) && !Bits.get(b, 8));
  assert.ok(!Bits.valid(Buffer.from([0xff, 0xff]), 10));
  assert.ok(!Bits.valid(Buffer.from([0xff]), 10));
});

test("BEP 10 handshake, ut_metadata and ut_pex codecs, and their bad inputs", () => {
  const h = decodeExtHandshake(encodeExtHandshake({ metadataSize: 1234, port: 6881, pex: true }));
  assert.deepEqual(h.m, { ut_metadata: 1, ut_pex: 2 });
  assert.equal(h.metadataSize, 1234);
  assert.throws(() => decodeExtHandshake(encode({ m: {}, metadata_size: 1e9 })), { code: "AMI_INVALID_INPUT" });
  const data = decodeMetadata(encodeMetadata({ kind: "data", piece: 0, totalSize: 3, data: Buffer.from("abc") }));
  assert.deepEqual(data, { kind: "data", piece: 0, totalSize: 3, data: Buffer.from("abc") });
  assert.throws(() => decodeMetadata(encode({ msg_type: 9, piece: 0 })), { code: "AMI_INVALID_INPUT" });
  assert.throws(() => decodeMetadata(encode({ msg_type: 0, piece: -1 })), { code: "AMI_INVALID_INPUT" });
  const peers = [
    { host: "10.0.0.1", port: 6881 },
    { host: "2001:db8:0:0:0:0:0:1", port: 51413 },
  ];
  assert.deepEqual(decodeCompact(encodeCompact(peers)), [peers[0]]);
  assert.deepEqual(decodeCompact(encodeCompact(peers, true), true), [{ host: "2001:db8:0:0:0:0:0:1", port: 51413 }]);
  assert.deepEqual(decodePex(encodePex(peers, [])).added.length, 2);
  assert.throws(() => decodePex(Buffer.from("garbage")), { code: "AMI_INVALID_INPUT" });
  assert.throws(() => decodePex(encode({ added: Buffer.alloc(6 * 201, 1) })), { code: "AMI_INVALID_INPUT" });
});
