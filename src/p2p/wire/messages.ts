/**
 * Peer wire messages (BEP 3) with the fast extension (BEP 6), DHT port (BEP 5), extension protocol (BEP 10)
 * and v2 hash request / hashes / hash reject (BEP 52) ids: encoding, and a framer that turns a byte stream into messages. Every length is checked against the
 * message's id before it is read; a frame over MAX_FRAME or of the wrong size for its id is an error (the
 * connection drops that peer), never an allocation the peer chose.
 */
import { AmiError } from "../../core/errors.ts";

export const PROTOCOL = Buffer.from("\x13BitTorrent protocol", "latin1");
export const HANDSHAKE_LENGTH = 68;
/** A 16 KiB block plus headroom for a large bitfield (2 M pieces) or an extended message. */
export const MAX_FRAME = 256 * 1024 + 16;
export const MAX_BLOCK = 16 * 1024;

export const Id = {
  choke: 0,
  unchoke: 1,
  interested: 2,
  notInterested: 3,
  have: 4,
  bitfield: 5,
  request: 6,
  piece: 7,
  cancel: 8,
  port: 9,
  suggest: 0x0d,
  haveAll: 0x0e,
  haveNone: 0x0f,
  reject: 0x10,
  allowedFast: 0x11,
  extended: 20,
  hashRequest: 21,
  hashes: 22,
  hashReject: 23,
} as const;

/** BEP 52: most hashes one request may name (a hashes frame stays under MAX_FRAME), and the most proof layers. */
export const MAX_HASHES = 4096;
export const MAX_PROOF_LAYERS = 32;

/**
 * Uncle hashes a hashes message carries after its `length` base hashes, as libtorrent 2.0 (the reference) counts
 * them: `proof layers` counts layers from the base layer up, the lowest log2(length) - 1 of them lie inside the
 * span's own subtree (computed from the base hashes, never sent), and each one above gives one uncle, from the
 * sibling of the span's root upward. A whole layer is `proof layers` log2(length) - 1 and no uncle.
 */
export const uncleCount = (length: number, proofLayers: number): number =>
  Math.max(0, proofLayers - Math.round(Math.log2(length)) + 1);

/** The common header of hash request / hashes / hash reject: which file tree, which layer, which span. */
export interface HashSpan {
  root: Buffer;
  base: number;
  index: number;
  length: number;
  proofLayers: number;
}

export type Message =
  | { type: "keepalive" }
  | { type: "choke" | "unchoke" | "interested" | "notInterested" | "haveAll" | "haveNone" }
  | { type: "have" | "suggest" | "allowedFast"; index: number }
  | { type: "bitfield"; bits: Buffer }
  | { type: "request" | "cancel" | "reject"; index: number; begin: number; length: number }
  | { type: "piece"; index: number; begin: number; block: Buffer }
  | { type: "port"; port: number }
  | { type: "extended"; ext: number; payload: Buffer }
  | ({ type: "hashRequest" | "hashReject" } & HashSpan)
  | ({ type: "hashes"; hashes: Buffer } & HashSpan)
  | { type: "unknown"; id: number };

export interface Handshake {
  reserved: Buffer;
  infohash: Buffer;
  peerId: Buffer;
}

/** Reserved bits we set and read: DHT (BEP 5), fast (BEP 6), extension protocol (BEP 10), v2 (BEP 52). */
export const Reserved = {
  dht: (r: Buffer): boolean => ((r[7] ?? 0) & 0x01) !== 0,
  fast: (r: Buffer): boolean => ((r[7] ?? 0) & 0x04) !== 0,
  v2: (r: Buffer): boolean => ((r[7] ?? 0) & 0x10) !== 0,
  extended: (r: Buffer): boolean => ((r[5] ?? 0) & 0x10) !== 0,
  make(o: { dht?: boolean; fast?: boolean; extended?: boolean; v2?: boolean }): Buffer {
    const r = Buffer.alloc(8);
    if (o.extended) r[5] = 0x10;
    r[7] = (o.dht ? 0x01 : 0) | (o.fast ? 0x04 : 0) | (o.v2 ? 0x10 : 0);
    return r;
  },
};

export function encodeHandshake(h: Handshake): Buffer {
  return Buffer.concat([PROTOCOL, h.reserved, h.infohash, h.peerId]);
}

export function decodeHandshake(b: Buffer): Handshake {
  if (b.length < HANDSHAKE_LENGTH || !b.subarray(0, 20).equals(PROTOCOL))
    throw new AmiError("AMI_INVALID_INPUT", "peer wire: not a BitTorrent handshake");
  return { reserved: b.subarray(20, 28), infohash: b.subarray(28, 48), peerId: b.subarray(48, 68) };
}

const simple = (id: number): Buffer => Buffer.from([0, 0, 0, 1, id]);
const withInts = (id: number, ...ints: number[]): Buffer => {
  const b = Buffer.alloc(5 + 4 * ints.length);
  b.writeUInt32BE(1 + 4 * ints.length, 0);
  b[4] = id;
  for (const [i, n] of ints.entries()) b.writeUInt32BE(n, 5 + 4 * i);
  return b;
};

export function encodeMessage(m: Message): Buffer {
  switch (m.type) {
    case "keepalive":
      return Buffer.alloc(4);
    case "choke":
    case "unchoke":
    case "interested":
    case "notInterested":
    case "haveAll":
    case "haveNone":
      return simple(Id[m.type]);
    case "have":
    case "suggest":
    case "allowedFast":
      return withInts(Id[m.type], m.index);
    case "request":
    case "cancel":
    case "reject":
      return withInts(Id[m.type], m.index, m.begin, m.length);
    case "bitfield": {
      const h = Buffer.alloc(5);
      h.writeUInt32BE(1 + m.bits.length, 0);
      h[4] = Id.bitfield;
      return Buffer.concat([h, m.bits]);
    }
    case "piece": {
      const h = withInts(Id.piece, m.index, m.begin);
      h.writeUInt32BE(9 + m.block.length, 0);
      return Buffer.concat([h, m.block]);
    }
    case "port": {
      const b = Buffer.from([0, 0, 0, 3, Id.port, 0, 0]);
      b.writeUInt16BE(m.port, 5);
      return b;
    }
    case "extended": {
      const h = Buffer.from([0, 0, 0, 0, Id.extended, m.ext]);
      h.writeUInt32BE(2 + m.payload.length, 0);
      return Buffer.concat([h, m.payload]);
    }
    case "hashRequest":
    case "hashReject":
    case "hashes": {
      const h = Buffer.alloc(53);
      const extra = m.type === "hashes" ? m.hashes : Buffer.alloc(0);
      h.writeUInt32BE(49 + extra.length, 0);
      h[4] = Id[m.type];
      m.root.copy(h, 5, 0, 32);
      h.writeUInt32BE(m.base, 37);
      h.writeUInt32BE(m.index, 41);
      h.writeUInt32BE(m.length, 45);
      h.writeUInt32BE(m.proofLayers, 49);
      return extra.length ? Buffer.concat([h, extra]) : h;
    }
    case "unknown":
      return simple(m.id);
  }
}

/** BEP 52 header (after the id): pieces root, base layer, index, length, proof layers; bounded before use. */
function hashSpan(p: Buffer, what: string): HashSpan {
  const span = {
    root: Buffer.from(p.subarray(0, 32)),
    base: p.readUInt32BE(32),
    index: p.readUInt32BE(36),
    length: p.readUInt32BE(40),
    proofLayers: p.readUInt32BE(44),
  };
  const { length, index, base, proofLayers } = span;
  if (length < 1 || length > MAX_HASHES || (length & (length - 1)) !== 0) bad(`${what} for ${length} hashes`);
  if (index % length !== 0) bad(`${what} index ${index} not a multiple of its length ${length}`);
  if (base > 64 || proofLayers > MAX_PROOF_LAYERS) bad(`${what} with base ${base}, ${proofLayers} proof layers`);
  return span;
}

/** Exact payload sizes (after the id byte) of fixed-size messages. */
const FIXED: Record<number, number> = {
  [Id.choke]: 0,
  [Id.unchoke]: 0,
  [Id.interested]: 0,
  [Id.notInterested]: 0,
  [Id.haveAll]: 0,
  [Id.haveNone]: 0,
  [Id.have]: 4,
  [Id.suggest]: 4,
  [Id.allowedFast]: 4,
  [Id.request]: 12,
  [Id.cancel]: 12,
  [Id.reject]: 12,
  [Id.port]: 2,
  [Id.hashRequest]: 48,
  [Id.hashReject]: 48,
};
const NAMES = Object.fromEntries(Object.entries(Id).map(([k, v]) => [v, k])) as Record<number, string>;

function bad(m: string): never {
  throw new AmiError("AMI_INVALID_INPUT", `peer wire: ${m}`);
}

/** Decode one frame's body (id + payload, without the 4-byte length). */
export function decodeFrame(f: Buffer): Message {
  if (f.length === 0) return { type: "keepalive" };
  const id = f[0] as number;
  const p = f.subarray(1);
  const fixed = FIXED[id];
  if (fixed !== undefined && p.length !== fixed) bad(`${NAMES[id]} with ${p.length} payload bytes`);
  switch (id) {
    case Id.choke:
    case Id.unchoke:
    case Id.interested:
    case Id.notInterested:
    case Id.haveAll:
    case Id.haveNone:
      return { type: NAMES[id] as "choke" };
    case Id.have:
    case Id.suggest:
    case Id.allowedFast:
      return { type: NAMES[id] as "have", index: p.readUInt32BE(0) };
    case Id.request:
    case Id.cancel:
    case Id.reject: {
      const length = p.readUInt32BE(8);
      if (length === 0 || length > MAX_BLOCK) bad(`${NAMES[id]} for ${length} bytes`);
      return { type: NAMES[id] as "request", index: p.readUInt32BE(0), begin: p.readUInt32BE(4), length };
    }
    case Id.bitfield:
      return { type: "bitfield", bits: Buffer.from(p) };
    case Id.piece:
      if (p.length < 8 || p.length - 8 > MAX_BLOCK) bad(`piece with ${p.length} bytes`);
      return { type: "piece", index: p.readUInt32BE(0), begin: p.readUInt32BE(4), block: Buffer.from(p.subarray(8)) };
    case Id.port:
      return { type: "port", port: p.readUInt16BE(0) };
    case Id.extended:
      if (p.length < 1) bad("empty extended message");
      return { type: "extended", ext: p[0] as number, payload: Buffer.from(p.subarray(1)) };
    case Id.hashRequest:
    case Id.hashReject:
      return { type: NAMES[id] as "hashRequest", ...hashSpan(p, NAMES[id] as string) };
    case Id.hashes: {
      if (p.length < 48 || (p.length - 48) % 32 !== 0) bad(`hashes with ${p.length} payload bytes`);
      const span = hashSpan(p, "hashes");
      const count = (p.length - 48) / 32;
      // The requested hashes, then at most the uncles its proof layers name.
      if (count < span.length || count > span.length + uncleCount(span.length, span.proofLayers))
        bad(`hashes: ${count} for ${span.length} and ${span.proofLayers} proof layers`);
      return { type: "hashes", ...span, hashes: Buffer.from(p.subarray(48)) };
    }
    default:
      return { type: "unknown", id };
  }
}

/**
 * Splits a byte stream into frames. `push` returns the complete messages so far and keeps the rest; it throws
 * (AMI_INVALID_INPUT) on a frame over `max` or a malformed message, after which the stream is unusable.
 */
export class Framer {
  private buf: Buffer = Buffer.alloc(0);
  private readonly max: number;
  constructor(max = MAX_FRAME) {
    this.max = max;
  }

  push(chunk: Buffer): Message[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Message[] = [];
    let o = 0;
    while (this.buf.length - o >= 4) {
      const len = this.buf.readUInt32BE(o);
      if (len > this.max) bad(`frame of ${len} bytes (limit ${this.max})`);
      if (this.buf.length - o - 4 < len) break;
      out.push(decodeFrame(this.buf.subarray(o + 4, o + 4 + len)));
      o += 4 + len;
    }
    this.buf = o === this.buf.length ? Buffer.alloc(0) : Buffer.from(this.buf.subarray(o));
    return out;
  }

  /** Bytes held for an incomplete frame. */
  get pending(): number {
    return this.buf.length;
  }
}

/** Bitfield helpers (bit 0 = the high bit of byte 0). */
export const Bits = {
  make: (n: number): Buffer => Buffer.alloc(Math.ceil(n / 8)),
  get: (b: Buffer, i: number): boolean => (((b[i >> 3] ?? 0) >> (7 - (i & 7))) & 1) === 1,
  set(b: Buffer, i: number): void {
    b[i >> 3] = (b[i >> 3] ?? 0) | (1 << (7 - (i & 7)));
  },
  /** A peer's bitfield must be exactly ceil(n / 8) bytes with spare bits clear. */
  valid(b: Buffer, n: number): boolean {
    if (b.length !== Math.ceil(n / 8)) return false;
    for (let i = n; i < b.length * 8; i++) if (Bits.get(b, i)) return false;
    return true;
  },
};
