import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { BLOCK, nextPow2, rootOf, zeroRoot } from "../merkle.ts";
import type { Metainfo } from "../metainfo.ts";
import { encodeMessage, Framer, type Message, Reserved } from "../wire/messages.ts";
import { LayerFetch, pieceLayerBase, serveHashes, verifySpan } from "./hashes.ts";
import type { Peer } from "./peer.ts";

const PL = 4 * BLOCK;

/** A v2 torrent of one file of `pieces` pieces with a random piece layer (only the tree's shape matters here). */
function torrent(pieces: number): { meta: Metainfo; layer: Buffer; root: Buffer } {
  const layer = randomBytes(pieces * 32);
  const hashes = Array.from({ length: pieces }, (_, i) => layer.subarray(i * 32, i * 32 + 32));
  const root = rootOf(hashes, nextPow2(pieces), zeroRoot(PL / BLOCK));
  const length = pieces * PL - 100;
  const meta = {
    name: "x",
    pieceLength: PL,
    version: "v2",
    files: [{ path: ["x"], length, offset: 0, pad: false, piecesRoot: root }],
    pieceLayers: new Map([[root.toString("hex"), layer]]),
  } as unknown as Metainfo;
  return { meta, layer, root };
}

const stripped = (m: Metainfo): Metainfo => ({ ...m, pieceLayers: new Map() });
const peer = (v2 = true) => ({ wire: { theirs: { reserved: Reserved.make({ v2 }) } } }) as unknown as Peer;
/** Through the wire codec both ways, as a real connection would carry it. */
const wire = (m: Message): Message => new Framer().push(encodeMessage(m))[0] as Message;

/** Fetch every span from `server`, through `tamper` on the way back; returns the fetcher's result. */
function fetch(pieces: number, tamper: (m: Message & { type: "hashes" }) => void = () => {}) {
  const { meta, layer } = torrent(pieces);
  const f = new LayerFetch(stripped(meta));
  const sent: Message[] = [];
  const p = peer();
  f.peerReady(p, (m) => sent.push(wire(m)));
  let out: Metainfo | undefined;
  for (const req of sent) {
    assert.equal(req.type, "hashRequest");
    const resp = wire(serveHashes(meta, req as Message & { type: "hashRequest" }));
    assert.equal(resp.type, "hashes");
    tamper(resp as Message & { type: "hashes" });
    out = f.onHashes(p, resp as Message & { type: "hashes" }) ?? out;
  }
  return { sent, out, layer, meta };
}

test("a piece layer comes over hash requests in one span and in several (with uncle hashes) and proves to the root", () => {
  for (const pieces of [2, 5, 4096, 5000]) {
    const { sent, out, layer, meta } = fetch(pieces);
    assert.equal(sent.length, Math.ceil(pieces / 4096), `${pieces} pieces`);
    const r = sent[0] as Message & { type: "hashRequest" };
    assert.equal(r.base, pieceLayerBase(PL));
    // libtorrent's count: log2(span) - 1 layers inside the span, then one per uncle (none for a whole layer).
    assert.equal(r.proofLayers, Math.log2(nextPow2(pieces)) - 1);
    assert.equal(r.length, Math.min(4096, nextPow2(pieces)));
    const root = meta.files[0]?.piecesRoot?.toString("hex") as string;
    assert.deepEqual(out?.pieceLayers.get(root), layer, `${pieces} pieces`);
  }
});

test("a corrupted hashes message (a base hash or an uncle) is rejected, and a file of one piece needs none", () => {
  assert.throws(
    () =>
      fetch(8, (m) => {
        m.hashes[5] = (m.hashes[5] as number) ^ 1;
      }),
    {
      code: "AMI_INVALID_INPUT",
    },
  );
  // The last 32 bytes of a span of a 5,000-piece file are its uncle.
  assert.throws(
    () =>
      fetch(5000, (m) => {
        m.hashes[m.hashes.length - 1] = 0;
      }),
    { code: "AMI_INVALID_INPUT" },
  );
  // Right hashes, wrong position: proving index 4096's span as if it were index 0's fails too.
  const { meta, root } = torrent(5000);
  const f = new LayerFetch(stripped(meta));
  const p = peer();
  const reqs: Message[] = [];
  f.peerReady(p, (m) => reqs.push(m));
  const second = serveHashes(meta, reqs[1] as Message & { type: "hashRequest" }) as Message & { type: "hashes" };
  assert.throws(() => f.onHashes(p, { ...second, index: 0 }), { code: "AMI_INVALID_INPUT" });
  // Unsolicited hashes (nobody asked this peer) are ignored, not believed.
  assert.equal(f.onHashes(peer(), second), undefined);
  // Requests we cannot answer get a hash reject.
  const wrong = { root, base: 0, index: 0, length: 2, proofLayers: 0 };
  assert.equal(serveHashes(meta, wrong).type, "hashReject");
  assert.equal(serveHashes(meta, { ...wrong, root: Buffer.alloc(32) }).type, "hashReject");
  assert.equal(serveHashes(undefined, wrong).type, "hashReject");
  const small = { ...meta, files: [{ path: ["y"], length: PL, offset: 0, pad: false, piecesRoot: root }] };
  assert.ok(new LayerFetch(stripped(small as Metainfo)).done);
  assert.ok(new LayerFetch({ ...stripped(meta), version: "hybrid" }).done, "a hybrid checks pieces by SHA-1");
});

test("hash requests the way libtorrent 2.0 asks: spans of 512, proof layers counted from the base layer", () => {
  // 5,000 pieces: a piece layer 8,192 wide (13 layers up to the root), so a span of 512 sits 4 layers below it.
  const { meta, layer, root } = torrent(5000);
  const base = pieceLayerBase(PL);
  const hashes = Array.from({ length: 5000 }, (_, i) => layer.subarray(i * 32, i * 32 + 32));
  const pad = zeroRoot(PL / BLOCK);
  const spanRoot = (k: number, n: number) => rootOf(hashes.slice(k * n, (k + 1) * n), n, pad);
  const ask = (index: number, length: number, proofLayers: number) => {
    const req = { root, base, index, length, proofLayers };
    return { req, resp: wire(serveHashes(meta, { ...req })) as Message & { type: "hashes" } };
  };
  // Its first request knows only the root: 8 layers inside the span + 4 uncles (spans 1, 2-3, 4-7, 8-15 roots).
  const first = ask(0, 512, 12);
  assert.equal(first.resp.type, "hashes");
  assert.equal(first.resp.hashes.length, (512 + 4) * 32);
  assert.deepEqual(first.resp.hashes.subarray(512 * 32, 513 * 32), spanRoot(1, 512), "the first uncle: span 1's root");
  assert.ok(verifySpan(root, first.req, first.resp));
  // Then span 1, whose parent it now has: 9 proof layers, one uncle (span 0's root).
  const next = ask(512, 512, 9);
  assert.equal(next.resp.hashes.length, 513 * 32);
  assert.deepEqual(next.resp.hashes.subarray(512 * 32), spanRoot(0, 512));
  // 8 proof layers are all inside a span of 512: no uncle.
  assert.equal(ask(1024, 512, 8).resp.hashes.length, 512 * 32);
  // A span of one hash (the tail of a file 513 pieces long): its own sibling is the first uncle.
  const one = ask(4999, 1, 2);
  assert.equal(one.resp.hashes.length, 4 * 32);
  assert.deepEqual(one.resp.hashes.subarray(32, 64), hashes[4998]);
  // Proof layers reaching the pieces root (13 of 13) are refused, as libtorrent refuses them.
  assert.equal(ask(0, 512, 13).resp.type, "hashReject");
  const big = { root, base, index: 0, length: 8192, proofLayers: 12 };
  assert.equal(serveHashes(meta, big).type, "hashReject", "more than a frame carries");
});
