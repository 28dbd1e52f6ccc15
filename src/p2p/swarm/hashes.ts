/**
 * BEP 52 piece layers over the wire. A v2 magnet's info dict (from ut_metadata) has each file's pieces root but
 * not the piece layers (they sit outside the info dict), so pieces of files longer than one piece cannot be
 * checked until the layers come from peers: `LayerFetch` asks peers for them with hash requests and believes
 * a span only when its hashes plus the uncle hashes climb to the file's pieces root; `serveHashes` answers
 * others' requests from a torrent we have.
 */
import { createHash } from "node:crypto";
import { AmiError } from "../../core/errors.ts";
import { BLOCK, nextPow2, zeroRoot } from "../merkle.ts";
import type { Metainfo } from "../metainfo.ts";
import { type HashSpan, MAX_HASHES, type Message, uncleCount } from "../wire/messages.ts";
import type { Peer } from "./peer.ts";

/**
 * Hashes we ask for at once (128 KiB of them, one frame). A file of more pieces is fetched in spans, each with
 * the uncle hashes from its root up to the pieces root (libtorrent 2.0 asks in spans of 512 and answers up to 8,192).
 */
const SPAN = 4096;

const pair = (a: Buffer, b: Buffer): Buffer => createHash("sha256").update(a).update(b).digest();
const log2 = (n: number): number => Math.round(Math.log2(n));

/** The piece layer's depth above the 16 KiB leaves (BEP 52 `base layer` for piece hashes). */
export const pieceLayerBase = (pieceLength: number): number => log2(pieceLength / BLOCK);

/** Every level of the tree above a piece layer padded to a power of two (level 0 = the padded layer). */
function levels(layer: Buffer, pieceLength: number): Buffer[][] {
  const n = layer.length / 32;
  const pad = zeroRoot(pieceLength / BLOCK);
  let level = Array.from({ length: nextPow2(n) }, (_, i) => (i < n ? layer.subarray(i * 32, i * 32 + 32) : pad));
  const out = [level];
  while (level.length > 1) {
    const next: Buffer[] = [];
    for (let i = 0; i < level.length; i += 2) next.push(pair(level[i] as Buffer, level[i + 1] as Buffer));
    out.push(next);
    level = next;
  }
  return out;
}

/** Trees built for serving, by piece layer: a big file is asked for span by span, each span's proof from one tree. */
const trees = new WeakMap<Buffer, Buffer[][]>();

/**
 * Answer a hash request from a torrent we have: the span of the piece layer (padded like the tree) followed by
 * the uncles its proof layers name (`uncleCount`: libtorrent's count), from the sibling of the span's root upward.
 * A request for another layer, past the layer's padded width, or with proof layers reaching the pieces root
 * (libtorrent's bound: fewer than log2(width)) gets a hash reject.
 */
export function serveHashes(meta: Metainfo | undefined, req: HashSpan): Message {
  // Only the span's fields: `req` may be the whole hashRequest message, whose `type` must not leak through.
  const r: HashSpan = {
    root: req.root,
    base: req.base,
    index: req.index,
    length: req.length,
    proofLayers: req.proofLayers,
  };
  const reject: Message = { ...r, type: "hashReject" };
  const hex = r.root.toString("hex");
  const layer = meta?.pieceLayers.get(hex);
  if (!meta || !layer || r.base !== pieceLayerBase(meta.pieceLength)) return reject;
  const width = nextPow2(layer.length / 32);
  if (r.length > width || r.index + r.length > width || r.length > MAX_HASHES) return reject;
  if (r.proofLayers >= log2(width)) return reject;
  const tree = trees.get(layer) ?? levels(layer, meta.pieceLength);
  trees.set(layer, tree);
  const base = (tree[0] as Buffer[]).slice(r.index, r.index + r.length);
  const uncles: Buffer[] = [];
  let pos = r.index / r.length;
  const want = uncleCount(r.length, r.proofLayers);
  for (let l = log2(r.length); uncles.length < want; l++, pos >>= 1)
    uncles.push((tree[l] as Buffer[])[pos ^ 1] as Buffer);
  return { ...r, type: "hashes", hashes: Buffer.concat([...base, ...uncles]) };
}

/** Check a hashes message for a span we asked for against the file's pieces root. */
export function verifySpan(root: Buffer, asked: HashSpan, got: HashSpan & { hashes: Buffer }): Buffer | undefined {
  if (!got.root.equals(root) || got.base !== asked.base || got.index !== asked.index) return undefined;
  const uncles = uncleCount(asked.length, asked.proofLayers);
  if (got.length !== asked.length || got.hashes.length !== (asked.length + uncles) * 32) return undefined;
  let level: Buffer[] = [];
  for (let i = 0; i < asked.length; i++) level.push(got.hashes.subarray(i * 32, i * 32 + 32));
  while (level.length > 1) {
    const next: Buffer[] = [];
    for (let i = 0; i < level.length; i += 2) next.push(pair(level[i] as Buffer, level[i + 1] as Buffer));
    level = next;
  }
  let h = level[0] as Buffer;
  let pos = asked.index / asked.length;
  for (let u = 0; u < uncles; u++, pos >>= 1) {
    const uncle = got.hashes.subarray((asked.length + u) * 32, (asked.length + u + 1) * 32);
    h = pos % 2 === 0 ? pair(h, uncle) : pair(uncle, h);
  }
  return pos === 0 && h.equals(root) ? got.hashes.subarray(0, asked.length * 32) : undefined;
}

interface Need {
  root: Buffer;
  pieces: number;
  span: number;
  proofLayers: number;
  got: (Buffer | undefined)[];
}

type Send = (m: Message) => void;

/** Fetching the piece layers a v2 magnet's info dict leaves out, span by span, from peers that speak v2. */
export class LayerFetch {
  readonly meta: Metainfo;
  private readonly needs = new Map<string, Need>();
  private readonly asked = new Map<string, Peer>();
  private readonly senders = new Map<Peer, Send>();

  constructor(meta: Metainfo) {
    this.meta = meta;
    // A hybrid's pieces check against its v1 SHA-1s: asking for layers would stall a swarm of v1-only clients.
    if (meta.version !== "v2") return;
    for (const f of meta.files) {
      if (!f.piecesRoot || f.length <= meta.pieceLength) continue;
      const hex = f.piecesRoot.toString("hex");
      if (meta.pieceLayers.has(hex)) continue;
      const pieces = Math.ceil(f.length / meta.pieceLength);
      const width = nextPow2(pieces);
      const span = Math.min(width, SPAN);
      const n = Math.ceil(pieces / span);
      // libtorrent's count (`uncleCount`): log2(span) - 1 layers inside the span, then one per uncle up to the root.
      const proofLayers = log2(span) - 1 + log2(width / span);
      this.needs.set(hex, { root: f.piecesRoot, pieces, span, proofLayers, got: new Array(n) });
    }
  }

  get done(): boolean {
    return this.needs.size === 0;
  }

  private spanOf(need: Need, k: number): HashSpan {
    const base = pieceLayerBase(this.meta.pieceLength);
    return { root: need.root, base, index: k * need.span, length: need.span, proofLayers: need.proofLayers };
  }

  /**
   * A peer is connected: ask it for spans nobody is fetching. Not only peers with the v2 bit: libtorrent 2.0 sets
   * it for hybrids alone, and on a v2-only torrent's hash every peer speaks v2 (one that cannot answers a reject).
   */
  peerReady(p: Peer, send: Send): void {
    this.senders.set(p, send);
    this.askFrom(p);
  }

  private askFrom(p: Peer): void {
    const send = this.senders.get(p);
    if (!send) return;
    for (const [hex, need] of this.needs)
      for (let k = 0; k < need.got.length; k++) {
        const key = `${hex}:${k}`;
        if (need.got[k] || this.asked.has(key)) continue;
        this.asked.set(key, p);
        send({ ...this.spanOf(need, k), type: "hashRequest" });
      }
  }

  forget(p: Peer): void {
    this.senders.delete(p);
    for (const [k, q] of this.asked) if (q === p) this.asked.delete(k);
    for (const q of this.senders.keys()) this.askFrom(q);
  }

  /** The peer will not give us a span: ask the others. */
  onReject(p: Peer, r: HashSpan): void {
    const need = this.needs.get(r.root.toString("hex"));
    if (!need || r.index % need.span !== 0) return;
    const key = `${r.root.toString("hex")}:${r.index / need.span}`;
    if (this.asked.get(key) !== p) return;
    this.asked.delete(key);
    this.senders.delete(p);
    for (const q of this.senders.keys()) this.askFrom(q);
  }

  /**
   * A hashes message: a span that does not prove up to the pieces root throws (the torrent bans the peer);
   * returns the metainfo with every piece layer once the last span is in.
   */
  onHashes(p: Peer, m: HashSpan & { hashes: Buffer }): Metainfo | undefined {
    const hex = m.root.toString("hex");
    const need = this.needs.get(hex);
    if (!need || m.index % need.span !== 0) return undefined;
    const k = m.index / need.span;
    const key = `${hex}:${k}`;
    if (this.asked.get(key) !== p) return undefined;
    this.asked.delete(key);
    const good = verifySpan(need.root, this.spanOf(need, k), m);
    if (!good) throw new AmiError("AMI_INVALID_INPUT", `hashes for ${hex.slice(0, 16)} do not prove to its root`);
    need.got[k] = good;
    if (need.got.filter(Boolean).length < need.got.length) return undefined;
    this.meta.pieceLayers.set(hex, Buffer.concat(need.got as Buffer[]).subarray(0, need.pieces * 32));
    this.needs.delete(hex);
    return this.done ? this.meta : undefined;
  }
}
