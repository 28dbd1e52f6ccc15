/**
 * The extension protocol (BEP 10) and the two extensions we speak: ut_metadata (BEP 9: the info dictionary in
 * 16 KiB pieces, so a magnet link is enough to start) and ut_pex (BEP 11: peers we are connected to).
 */
import { AmiError } from "../../core/errors.ts";
import { type BValue, bget, decode, decodeAt, encode, isDict } from "../bencode.ts";
import type { PeerAddress } from "../discovery.ts";

export const METADATA_PIECE = 16 * 1024;
/** Larger info dictionaries are refused (about 500,000 pieces of v1 hashes). */
export const MAX_METADATA = 10 * 1024 * 1024;
/** Our local ids for the extensions (what we put in `m`; peers send to us with these). */
export const OUR_EXT = { ut_metadata: 1, ut_pex: 2 } as const;

export interface ExtHandshake {
  /** Their ids for the extensions (0 or absent: not supported). */
  m: { ut_metadata?: number; ut_pex?: number };
  metadataSize?: number;
  /** Their listen port. */
  port?: number;
  client?: string;
  reqq?: number;
}

export function encodeExtHandshake(o: { metadataSize?: number; port?: number; pex: boolean }): Buffer {
  return encode({
    m: { ut_metadata: OUR_EXT.ut_metadata, ut_pex: o.pex ? OUR_EXT.ut_pex : undefined },
    metadata_size: o.metadataSize,
    p: o.port,
    v: "ami-streams",
    reqq: 250,
  });
}

export function decodeExtHandshake(payload: Buffer): ExtHandshake {
  const d = decode(payload);
  const m = bget.dict(d, "m") ?? {};
  const id = (k: string): number | undefined => {
    const v = bget.int(m, k);
    return v !== undefined && v > 0 && v < 256 ? v : undefined;
  };
  const size = bget.int(d, "metadata_size");
  if (size !== undefined && (size <= 0 || size > MAX_METADATA))
    throw new AmiError("AMI_INVALID_INPUT", `metadata_size ${size} out of range`);
  return {
    m: { ut_metadata: id("ut_metadata"), ut_pex: id("ut_pex") },
    metadataSize: size,
    port: bget.int(d, "p"),
    client: bget.str(d, "v"),
    reqq: bget.int(d, "reqq"),
  };
}

export type MetadataMsg =
  | { kind: "request"; piece: number }
  | { kind: "data"; piece: number; totalSize: number; data: Buffer }
  | { kind: "reject"; piece: number };

export function encodeMetadata(m: MetadataMsg): Buffer {
  if (m.kind === "request") return encode({ msg_type: 0, piece: m.piece });
  if (m.kind === "reject") return encode({ msg_type: 2, piece: m.piece });
  return Buffer.concat([encode({ msg_type: 1, piece: m.piece, total_size: m.totalSize }), m.data]);
}

export function decodeMetadata(payload: Buffer): MetadataMsg {
  const { value, end } = decodeAt(payload, 0);
  const type = bget.int(value, "msg_type");
  const piece = bget.int(value, "piece");
  if (piece === undefined || piece < 0 || piece > MAX_METADATA / METADATA_PIECE)
    throw new AmiError("AMI_INVALID_INPUT", "ut_metadata: bad piece");
  if (type === 0) return { kind: "request", piece };
  if (type === 2) return { kind: "reject", piece };
  if (type === 1) {
    const totalSize = bget.int(value, "total_size") ?? 0;
    const data = payload.subarray(end);
    if (data.length > METADATA_PIECE) throw new AmiError("AMI_INVALID_INPUT", "ut_metadata: piece too large");
    return { kind: "data", piece, totalSize, data: Buffer.from(data) };
  }
  throw new AmiError("AMI_INVALID_INPUT", `ut_metadata: msg_type ${type}`);
}

/** Compact peers (BEP 23): 6 bytes each for IPv4, 18 for IPv6. */
export function encodeCompact(peers: PeerAddress[], v6 = false): Buffer {
  const parts: Buffer[] = [];
  for (const p of peers) {
    const isV6 = p.host.includes(":");
    if (isV6 !== v6) continue;
    const b = Buffer.alloc(v6 ? 18 : 6);
    if (v6) {
      const full = expandV6(p.host);
      if (!full) continue;
      full.copy(b, 0);
      b.writeUInt16BE(p.port, 16);
    } else {
      const o = p.host.split(".").map(Number);
      if (o.length !== 4 || o.some((x) => !(x >= 0 && x <= 255))) continue;
      o.forEach((x, i) => {
        b[i] = x;
      });
      b.writeUInt16BE(p.port, 4);
    }
    parts.push(b);
  }
  return Buffer.concat(parts);
}

function expandV6(h: string): Buffer | undefined {
  const [head = "", tail] = h.split("::");
  const a = head ? head.split(":") : [];
  const b = tail ? tail.split(":") : [];
  const groups = tail === undefined ? a : [...a, ...Array(8 - a.length - b.length).fill("0"), ...b];
  if (groups.length !== 8) return undefined;
  const out = Buffer.alloc(16);
  for (const [i, g] of groups.entries()) out.writeUInt16BE(Number.parseInt(g || "0", 16) & 0xffff, i * 2);
  return out;
}

export function decodeCompact(b: Buffer | undefined, v6 = false): PeerAddress[] {
  if (!b) return [];
  const size = v6 ? 18 : 6;
  const out: PeerAddress[] = [];
  for (let o = 0; o + size <= b.length; o += size) {
    const host = v6
      ? Array.from({ length: 8 }, (_, i) => b.readUInt16BE(o + i * 2).toString(16)).join(":")
      : `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
    const port = b.readUInt16BE(o + size - 2);
    if (port > 0) out.push({ host, port });
  }
  return out;
}

export function encodePex(added: PeerAddress[], dropped: PeerAddress[]): Buffer {
  return encode({
    added: encodeCompact(added),
    "added.f": Buffer.alloc(added.filter((p) => !p.host.includes(":")).length),
    added6: encodeCompact(added, true),
    dropped: encodeCompact(dropped),
  });
}

export function decodePex(payload: Buffer): { added: PeerAddress[]; dropped: PeerAddress[] } {
  const d: BValue = decode(payload);
  if (!isDict(d)) throw new AmiError("AMI_INVALID_INPUT", "ut_pex: not a dictionary");
  const added = [...decodeCompact(bget.bytes(d, "added")), ...decodeCompact(bget.bytes(d, "added6"), true)];
  // BEP 11 caps a message at 50 added peers; more is a flood.
  if (added.length > 200) throw new AmiError("AMI_INVALID_INPUT", "ut_pex: too many peers");
  return { added, dropped: decodeCompact(bget.bytes(d, "dropped")) };
}
