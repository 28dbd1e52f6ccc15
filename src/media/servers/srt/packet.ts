/**
 * SRT packets (draft-sharabayko-srt section 3): the 16-byte header of data and control packets, 31-bit sequence
 * number arithmetic, and the control packets a live-mode peer exchanges after the handshake (ACK, ACKACK, NAK,
 * keepalive, shutdown, drop request, KM refresh). Everything big-endian, offsets from the UDP payload's start.
 */

export const CTRL_HANDSHAKE = 0;
export const CTRL_KEEPALIVE = 1;
export const CTRL_ACK = 2;
export const CTRL_NAK = 3;
export const CTRL_SHUTDOWN = 5;
export const CTRL_ACKACK = 6;
export const CTRL_DROPREQ = 7;
export const CTRL_PEERERROR = 8;
export const CTRL_EXT = 0x7fff;
/** UMSG_EXT subtypes: key material request/response after the handshake (a key refresh). */
export const EXT_KMREQ = 3;
export const EXT_KMRSP = 4;

export const HEADER = 16;
const SEQ_MASK = 0x7fffffff;

/** `s` + `n` in the 31-bit sequence space. */
export const seqAdd = (s: number, n: number): number => (s + n) & SEQ_MASK;
/** How far `to` is ahead of `from` (negative: behind), for distances below 2^30. */
export function seqDiff(from: number, to: number): number {
  const d = (to - from) & SEQ_MASK;
  return d >= 0x40000000 ? d - 0x80000000 : d;
}

/** Data packet word 1: PP=11 (a whole message), in-order 0, KK, retransmitted flag, message number. */
export const PP_SOLO = 0xc0000000;
export const KK_SHIFT = 27;
export const REXMIT_BIT = 0x04000000;
export const MSGNO_MASK = 0x03ffffff;

export interface DataHeader {
  seq: number;
  /** 0: clear; 1: even key; 2: odd key. */
  kk: number;
  rexmit: boolean;
  ts: number;
}

export const isControl = (b: Buffer): boolean => (b[0] as number) >= 0x80;
export const controlType = (b: Buffer): number => b.readUInt16BE(0) & 0x7fff;

export function dataHeader(b: Buffer): DataHeader {
  const w1 = b.readUInt32BE(4);
  return { seq: b.readUInt32BE(0), kk: (w1 >>> KK_SHIFT) & 3, rexmit: (w1 & REXMIT_BIT) !== 0, ts: b.readUInt32BE(8) };
}

/** A control packet: type, subtype, type-specific word, timestamp (µs), destination socket, then `cif`. */
export function control(
  type: number,
  typeInfo: number,
  ts: number,
  dest: number,
  cif: Buffer | number[] = [0],
  subtype = 0,
): Buffer {
  const words = Array.isArray(cif);
  const b = Buffer.allocUnsafe(HEADER + (words ? cif.length * 4 : cif.length));
  b.writeUInt32BE((0x80000000 | (type << 16) | subtype) >>> 0, 0);
  b.writeUInt32BE(typeInfo >>> 0, 4);
  b.writeUInt32BE(ts >>> 0, 8);
  b.writeUInt32BE(dest >>> 0, 12);
  if (words) for (let i = 0; i < cif.length; i++) b.writeUInt32BE((cif[i] as number) >>> 0, HEADER + i * 4);
  else cif.copy(b, HEADER);
  return b;
}

/**
 * A loss list (inclusive [from, to] ranges in order) as NAK words: a range is its first number with the top bit
 * set, then its last; a single loss is the number alone. At most `maxWords` words (one datagram).
 */
export function encodeLoss(ranges: readonly (readonly [number, number])[], maxWords = 360): number[] {
  const out: number[] = [];
  for (const [from, to] of ranges) {
    if (out.length + 2 > maxWords) break;
    if (from === to) out.push(from);
    else out.push((from | 0x80000000) >>> 0, to);
  }
  return out;
}

/** NAK words back to [from, to] ranges (malformed entries are skipped). */
export function decodeLoss(b: Buffer, off = HEADER): [number, number][] {
  const out: [number, number][] = [];
  for (let i = off; i + 4 <= b.length; i += 4) {
    const w = b.readUInt32BE(i);
    if (w & 0x80000000) {
      if (i + 8 > b.length) break;
      const to = b.readUInt32BE(i + 4) & SEQ_MASK;
      const from = w & SEQ_MASK;
      if (seqDiff(from, to) >= 0) out.push([from, to]);
      i += 4;
    } else out.push([w, w]);
  }
  return out;
}

/**
 * The sequence numbers a receiver is missing, as ordered, disjoint, inclusive ranges. Losses are added at the
 * end (a gap before a newer packet), removed anywhere (a retransmission arrived) and cut from the front (too
 * late: dropped).
 */
export class LossList {
  readonly ranges: [number, number][] = [];

  get size(): number {
    let n = 0;
    for (const [a, b] of this.ranges) n += seqDiff(a, b) + 1;
    return n;
  }

  get first(): number | undefined {
    return this.ranges[0]?.[0];
  }

  /** [from, to], all after every range already listed. */
  add(from: number, to: number): void {
    const last = this.ranges[this.ranges.length - 1];
    if (last && seqAdd(last[1], 1) === from) last[1] = to;
    else this.ranges.push([from, to]);
  }

  has(s: number): boolean {
    for (const [a, b] of this.ranges) if (seqDiff(a, s) >= 0 && seqDiff(s, b) >= 0) return true;
    return false;
  }

  remove(s: number): boolean {
    for (let i = 0; i < this.ranges.length; i++) {
      const r = this.ranges[i] as [number, number];
      const [a, b] = r;
      if (seqDiff(a, s) < 0) return false;
      if (seqDiff(s, b) < 0) continue;
      if (a === b) this.ranges.splice(i, 1);
      else if (s === a) r[0] = seqAdd(a, 1);
      else if (s === b) r[1] = seqAdd(b, -1);
      else this.ranges.splice(i, 1, [a, seqAdd(s, -1)], [seqAdd(s, 1), b]);
      return true;
    }
    return false;
  }

  /** Forgets every loss before `s` (they were dropped as too late). */
  dropBefore(s: number): void {
    while (this.ranges.length) {
      const r = this.ranges[0] as [number, number];
      if (seqDiff(s, r[0]) >= 0) return;
      if (seqDiff(s, r[1]) >= 0) {
        r[0] = s;
        return;
      }
      this.ranges.shift();
    }
  }
}
