/**
 * .torrent files (BEP 3 v1, BEP 52 v2, hybrid), parsed into one shape the swarm works with: a "piece space"
 * where every file has an offset (v1: files back to back, pad files included; v2: each file starts on a piece
 * boundary) and every piece a hash check. Infohashes are taken over the info dictionary's original bytes.
 */
import { createHash } from "node:crypto";
import { AmiError } from "../core/errors.ts";
import { type BDict, type BValue, bget, decode, decodeSpan, isDict } from "./bencode.ts";
import { BLOCK, blockHashes, nextPow2, pieceRoot, rootOf } from "./merkle.ts";

export interface TorrentFile {
  /** Path components under the torrent's name (empty for a single-file v1 torrent). */
  path: string[];
  length: number;
  /** Where the file starts in the piece space. */
  offset: number;
  /** BEP 47 pad file (zeros, never stored). */
  pad: boolean;
  /** v2: the file's merkle root. */
  piecesRoot?: Buffer;
}

export interface Metainfo {
  name: string;
  pieceLength: number;
  /** Bytes in the piece space (files, pads, v2 alignment gaps). */
  spaceLength: number;
  /** Sum of real (non-pad) file lengths. */
  totalLength: number;
  files: TorrentFile[];
  pieceCount: number;
  private: boolean;
  /** Tracker tiers (announce-list, or [[announce]]). */
  trackers: string[][];
  version: "v1" | "v2" | "hybrid";
  /** SHA-1 of the info dict (v1 and hybrid). */
  infohashV1?: Buffer;
  /** SHA-256 of the info dict (v2 and hybrid). */
  infohashV2?: Buffer;
  /** The raw info dictionary (what ut_metadata sends). */
  infoBytes: Buffer;
  /** v1 piece hashes, 20 bytes each. */
  pieces?: Buffer;
  /** v2 piece layers by pieces root (hex). */
  pieceLayers: Map<string, Buffer>;
  comment?: string;
  createdBy?: string;
}

function bad(m: string): never {
  throw new AmiError("AMI_INVALID_INPUT", `torrent: ${m}`);
}

/** The 20-byte id a torrent goes by on the wire and in the DHT: v1's SHA-1, else v2's SHA-256 truncated. */
export function wireHash(m: Pick<Metainfo, "infohashV1" | "infohashV2">): Buffer {
  return m.infohashV1 ?? (m.infohashV2 as Buffer).subarray(0, 20);
}

export function parseTorrent(buf: Uint8Array): Metainfo {
  const root = decode(buf);
  if (!isDict(root)) return bad("not a dictionary");
  const span = decodeSpan(buf, "info") ?? bad("no info dictionary");
  const infoBytes = Buffer.from(buf.subarray(span.start, span.end));
  const m = parseInfo(infoBytes, bget.dict(root, "piece layers"));
  const tiers: string[][] = [];
  for (const t of bget.list(root, "announce-list") ?? []) {
    if (!Array.isArray(t)) continue;
    const tier = t.filter(Buffer.isBuffer).map((b) => b.toString("utf8"));
    if (tier.length) tiers.push(tier);
  }
  const announce = bget.str(root, "announce");
  if (!tiers.length && announce) tiers.push([announce]);
  m.trackers = tiers;
  m.comment = bget.str(root, "comment");
  m.createdBy = bget.str(root, "created by");
  return m;
}

/** Parse a bare info dictionary (from ut_metadata, already checked against its infohash by the caller). */
export function parseInfo(infoBytes: Buffer, layers?: BDict): Metainfo {
  const info = decode(infoBytes);
  if (!isDict(info)) return bad("info is not a dictionary");
  const name = bget.str(info, "name") ?? bad("info has no name");
  if (!name || name === "." || name === ".." || name.includes("/")) bad(`unsafe name ${JSON.stringify(name)}`);
  const pieceLength = bget.int(info, "piece length") ?? bad("info has no piece length");
  if (pieceLength < BLOCK || pieceLength > 64 * 1024 * 1024) bad(`piece length ${pieceLength} out of range`);
  const metaVersion = bget.int(info, "meta version");
  const tree = bget.dict(info, "file tree");
  const pieces = bget.bytes(info, "pieces");
  const isV2 = metaVersion === 2 && tree !== undefined;
  const isV1 = pieces !== undefined;
  if (!isV1 && !isV2) bad("neither v1 pieces nor a v2 file tree");
  if (isV2 && (pieceLength & (pieceLength - 1)) !== 0) bad("v2 piece length must be a power of two");
  const m: Metainfo = {
    name,
    pieceLength,
    spaceLength: 0,
    totalLength: 0,
    files: [],
    pieceCount: 0,
    private: bget.int(info, "private") === 1,
    trackers: [],
    version: isV1 && isV2 ? "hybrid" : isV2 ? "v2" : "v1",
    infoBytes,
    pieceLayers: new Map(),
  };
  if (isV1) {
    m.infohashV1 = createHash("sha1").update(infoBytes).digest();
    if (pieces.length % 20 !== 0) bad("pieces is not a multiple of 20 bytes");
    m.pieces = pieces;
    m.files = v1Files(info, name);
    const last = m.files[m.files.length - 1];
    m.spaceLength = last ? last.offset + last.length : 0;
    m.pieceCount = pieces.length / 20;
    if (m.pieceCount !== Math.ceil(m.spaceLength / pieceLength)) bad("piece count does not match the length");
  }
  if (isV2) {
    m.infohashV2 = createHash("sha256").update(infoBytes).digest();
    const v2 = v2Files(tree, pieceLength);
    if (!isV1) {
      m.files = v2;
      const last = v2[v2.length - 1];
      m.spaceLength = last ? last.offset + last.length : 0;
      m.pieceCount = Math.ceil(m.spaceLength / pieceLength);
    } else {
      // Hybrid: the v1 view must describe the same files (BEP 52 aligns them with pad files).
      const real = m.files.filter((f) => !f.pad);
      if (real.length !== v2.length) bad("hybrid v1 and v2 file lists differ");
      real.forEach((f, i) => {
        const g = v2[i] as TorrentFile;
        if (f.length !== g.length || (f.length > 0 && f.offset % pieceLength !== 0)) bad("hybrid files not aligned");
        f.piecesRoot = g.piecesRoot;
      });
    }
    for (const [k, v] of Object.entries(layers ?? {}))
      if (Buffer.isBuffer(v)) m.pieceLayers.set(Buffer.from(k, "latin1").toString("hex"), v);
  }
  m.totalLength = m.files.filter((f) => !f.pad).reduce((s, f) => s + f.length, 0);
  return m;
}

function safeComponent(c: string): string {
  if (!c || c === "." || c === ".." || c.includes("/") || c.includes("\\") || c.includes("\0"))
    bad(`unsafe path component ${JSON.stringify(c)}`);
  return c;
}

function v1Files(info: BDict, name: string): TorrentFile[] {
  const length = bget.int(info, "length");
  if (length !== undefined) {
    if (length < 0) bad("negative length");
    return [{ path: [], length, offset: 0, pad: false }];
  }
  const list = bget.list(info, "files") ?? bad(`"${name}" has neither length nor files`);
  let offset = 0;
  return list.map((f: BValue) => {
    const len = bget.int(f, "length");
    const path = bget.list(f, "path");
    if (len === undefined || len < 0 || !path?.length) return bad("bad file entry");
    const parts = path.map((p) => (Buffer.isBuffer(p) ? safeComponent(p.toString("utf8")) : bad("bad path")));
    const attr = bget.str(f, "attr") ?? "";
    const file = { path: parts, length: len, offset, pad: attr.includes("p") };
    offset += len;
    return file;
  });
}

function v2Files(tree: BDict, pieceLength: number): TorrentFile[] {
  const out: TorrentFile[] = [];
  let offset = 0;
  const walk = (node: BDict, path: string[], depth: number): void => {
    if (depth > 64) bad("file tree too deep");
    for (const key of Object.keys(node).sort()) {
      const child = node[key];
      if (!isDict(child)) throw new AmiError("AMI_INVALID_INPUT", "torrent: bad file tree node");
      if (key === "") {
        const len = bget.int(child, "length");
        if (len === undefined || len < 0) throw new AmiError("AMI_INVALID_INPUT", "torrent: bad file length");
        const root = bget.bytes(child, "pieces root");
        if (len > 0 && root?.length !== 32) bad("file without a pieces root");
        out.push({ path, length: len, offset, pad: false, piecesRoot: root });
        offset += Math.ceil(len / pieceLength) * pieceLength;
        continue;
      }
      walk(child, [...path, safeComponent(Buffer.from(key, "latin1").toString("utf8"))], depth + 1);
    }
  };
  walk(tree, [], 0);
  return out;
}

/** Check one piece's bytes against the torrent (v1 SHA-1; else the v2 piece layer or the file's root). */
export function verifyPiece(m: Metainfo, index: number, data: Uint8Array): boolean {
  if (index < 0 || index >= m.pieceCount) return false;
  if (data.length !== pieceSize(m, index)) return false;
  if (m.pieces) {
    const want = m.pieces.subarray(index * 20, index * 20 + 20);
    return createHash("sha1").update(data).digest().equals(want);
  }
  const start = index * m.pieceLength;
  const f = m.files.find((x) => x.length > 0 && x.offset <= start && start < x.offset + x.length);
  if (!f?.piecesRoot) return false;
  if (f.length <= m.pieceLength) {
    const leaves = blockHashes(data);
    return rootOf(leaves, nextPow2(leaves.length)).equals(f.piecesRoot);
  }
  const layer = m.pieceLayers.get(f.piecesRoot.toString("hex"));
  if (!layer) return false;
  const i = (start - f.offset) / m.pieceLength;
  return pieceRoot(data, m.pieceLength).equals(layer.subarray(i * 32, i * 32 + 32));
}

/** Bytes of piece `index`: full, except the last piece of the space or (v2) of a file. */
export function pieceSize(m: Metainfo, index: number): number {
  const start = index * m.pieceLength;
  if (m.version === "v2") {
    const f = m.files.find((x) => x.length > 0 && x.offset <= start && start < x.offset + x.length);
    if (!f) return 0;
    return Math.min(m.pieceLength, f.offset + f.length - start);
  }
  return Math.max(0, Math.min(m.pieceLength, m.spaceLength - start));
}

/**
 * The most of piece `index` a peer may request: its size, except in a v2-only torrent, where libtorrent 2.0.8 to
 * 2.0.12 (qBittorrent 4.5/4.6) asks for a whole piece at the short end of every file, the last one too (the pad
 * space its file list aligns each file's end with); we answer that space with zeros (`Torrent.pump`).
 */
export function requestableSize(m: Metainfo, index: number): number {
  const size = pieceSize(m, index);
  return m.version === "v2" && size > 0 ? m.pieceLength : size;
}
