/**
 * AAC over RTP as RFC 3640 mpeg4-generic, mode AAC-hbr (sizeLength 13, indexLength 3, indexDeltaLength 3): a
 * 16-bit AU-headers-length, then one AU header per access unit, then the units. Receiving takes any size/index
 * lengths from the SDP and several units per packet (each 1024 samples after the previous); a unit fragmented
 * over packets is joined until the marker bit. Sending puts one unit in each packet, fragmented past the MTU.
 */

export interface AuParams {
  sizeLength: number;
  indexLength: number;
  indexDeltaLength: number;
}

export const AAC_HBR: AuParams = { sizeLength: 13, indexLength: 3, indexDeltaLength: 3 };

/** An access unit joined from fragments larger than this is dropped (an AAC frame is at most 8191 bytes in ADTS). */
export const MAX_AAC_UNIT = 64 * 1024;

export interface AacUnits {
  /** Access units in order; the i-th is 1024 * i samples after the packet's timestamp. */
  units: Buffer[];
}

/** Reads bits MSB first. */
function readBits(b: Buffer, bit: number, n: number): number {
  let v = 0;
  for (let i = 0; i < n; i++) {
    const p = bit + i;
    v = v * 2 + (((b[p >> 3] ?? 0) >> (7 - (p & 7))) & 1);
  }
  return v;
}

export class AacDepacketizer {
  readonly #p: AuParams;
  #frag: Buffer[] | undefined;
  #fragSize = 0;
  #fragBytes = 0;
  #fragTs = 0;
  /** Packets that could not be read. */
  dropped = 0;

  constructor(p: AuParams = AAC_HBR) {
    // A zero size length reads no header at all: the header loop would never end (an SDP can say sizelength=0).
    const bits = (n: number) => Number.isInteger(n) && n >= 0 && n <= 32;
    if (!bits(p.sizeLength) || !bits(p.indexLength) || !bits(p.indexDeltaLength) || p.sizeLength < 1)
      throw new Error(`AAC AU headers: sizelength ${p.sizeLength} / indexlength ${p.indexLength} not usable`);
    this.#p = p;
  }

  /** The access units of one packet, each with its RTP timestamp (1024 samples apart). */
  push(payload: Buffer, timestamp: number, marker: boolean): { timestamp: number; unit: Buffer }[] {
    if (payload.length < 2) return this.#drop();
    const headerBits = payload.readUInt16BE(0);
    const headerBytes = Math.ceil(headerBits / 8);
    if (2 + headerBytes > payload.length) return this.#drop();
    const sizes: number[] = [];
    const headers = payload.subarray(2, 2 + headerBytes);
    for (let bit = 0; bit + this.#p.sizeLength <= headerBits; ) {
      sizes.push(readBits(headers, bit, this.#p.sizeLength));
      bit += this.#p.sizeLength + (sizes.length === 1 ? this.#p.indexLength : this.#p.indexDeltaLength);
    }
    let data = payload.subarray(2 + headerBytes);
    if (sizes.length === 0) return this.#drop();
    // One unit larger than this packet: a fragment; the rest follows in packets with the same timestamp.
    if (sizes.length === 1 && (sizes[0] as number) > data.length) {
      if ((sizes[0] as number) > MAX_AAC_UNIT) return this.#drop();
      if (!this.#frag || this.#fragTs !== timestamp) {
        this.#frag = [];
        this.#fragBytes = 0;
        this.#fragTs = timestamp;
        this.#fragSize = sizes[0] as number;
      }
      this.#frag.push(data);
      this.#fragBytes += data.length;
      // More fragments than the announced size (a peer that never sets the marker): given up, not kept.
      if (this.#fragBytes > this.#fragSize) return this.#drop();
      if (!marker) return [];
      const unit = Buffer.concat(this.#frag);
      this.#frag = undefined;
      return unit.length === this.#fragSize ? [{ timestamp, unit }] : this.#drop();
    }
    if (this.#frag && this.#fragTs === timestamp && sizes.length === 1) {
      // The last fragment of a unit (its header repeats the full size).
      this.#frag.push(data);
      const unit = Buffer.concat(this.#frag);
      this.#frag = undefined;
      return unit.length === this.#fragSize ? [{ timestamp, unit }] : this.#drop();
    }
    this.#frag = undefined;
    const out: { timestamp: number; unit: Buffer }[] = [];
    for (const [i, size] of sizes.entries()) {
      if (size > data.length) return this.#drop();
      out.push({ timestamp: (timestamp + i * 1024) >>> 0, unit: data.subarray(0, size) });
      data = data.subarray(size);
    }
    return out;
  }

  #drop(): [] {
    this.dropped++;
    this.#frag = undefined;
    return [];
  }
}

/** The largest access unit AAC-hbr can carry: its AU-size field has 13 bits (RFC 3640 §3.3.6). */
export const MAX_AAC_HBR_UNIT = 0x1fff;

/**
 * The packet payloads for one access unit (AAC-hbr: 13-bit size, 3-bit index 0): one packet when it fits in
 * `maxPayload` bytes, else fragments (RFC 3640 §3.2.3: each with the one AU header giving the whole unit's size,
 * the same timestamp, the marker bit on the last only). A unit larger than 8191 bytes cannot be described in 13
 * bits (no AAC frame is: 6144 bits per channel): none, and the caller drops it, rather than a wrong size.
 */
export function packetizeAac(unit: Buffer, maxPayload = Number.POSITIVE_INFINITY): Buffer[] {
  if (unit.length > MAX_AAC_HBR_UNIT || unit.length === 0) return [];
  const room = Math.max(1, maxPayload - 4);
  const out: Buffer[] = [];
  for (let off = 0; off < unit.length; off += room) {
    const part = unit.subarray(off, Math.min(unit.length, off + room));
    const b = Buffer.allocUnsafe(4 + part.length);
    b.writeUInt16BE(16, 0);
    b.writeUInt16BE(unit.length << 3, 2);
    part.copy(b, 4);
    out.push(b);
  }
  return out;
}
