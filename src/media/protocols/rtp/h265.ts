/**
 * H.265 over RTP (RFC 7798, no DONL: sprop-max-don-diff 0): access units <-> RTP payloads. Receiving handles
 * single NAL units, aggregation packets (AP, type 48) and fragmentation units (FU, type 49); sending uses single
 * NAL units and FUs. Same loss rules as the H.264 depacketizer (h264.ts): a unit with a hole is dropped.
 */
import type { AccessUnit, RtpIn } from "./h264.ts";

export const H265_AP = 48;
export const H265_FU = 49;
const type = (b: Buffer): number => ((b[0] ?? 0) >> 1) & 0x3f;

export class H265Depacketizer {
  #nals: Buffer[] = [];
  #fu: Buffer[] | undefined;
  #ts: number | undefined;
  #seq: number | undefined;
  #broken = false;
  dropped = 0;
  late = 0;

  push(p: RtpIn): AccessUnit[] {
    const out: AccessUnit[] = [];
    if (this.#seq !== undefined) {
      const step = ((p.sequenceNumber - this.#seq) << 16) >> 16;
      if (step <= 0) {
        this.late++;
        return out;
      }
      if (step > 1 && (this.#nals.length > 0 || this.#fu)) this.#broken = true;
    }
    if (this.#ts !== undefined && p.timestamp !== this.#ts) this.#finish(out);
    this.#seq = p.sequenceNumber;
    this.#ts = p.timestamp;
    this.#payload(p.payload);
    if (p.marker) this.#finish(out);
    return out;
  }

  #finish(out: AccessUnit[]): void {
    if (this.#broken) this.dropped++;
    else if (this.#nals.length > 0 && this.#ts !== undefined) out.push({ timestamp: this.#ts, nals: this.#nals });
    this.#nals = [];
    this.#fu = undefined;
    this.#broken = false;
    this.#ts = undefined;
  }

  #payload(b: Buffer): void {
    if (b.length < 3) return;
    const t = type(b);
    if (t < H265_AP) {
      this.#nals.push(b);
    } else if (t === H265_AP) {
      for (let i = 2; i + 2 <= b.length; ) {
        const size = b.readUInt16BE(i);
        i += 2;
        if (size < 2 || i + size > b.length) {
          this.#broken = true;
          return;
        }
        this.#nals.push(b.subarray(i, i + size));
        i += size;
      }
    } else if (t === H265_FU) {
      const fu = b[2] as number;
      const start = (fu & 0x80) !== 0;
      const end = (fu & 0x40) !== 0;
      if (start) this.#fu = [Buffer.from([((b[0] as number) & 0x81) | ((fu & 0x3f) << 1), b[1] as number])];
      else if (!this.#fu) {
        this.#broken = true;
        return;
      }
      this.#fu.push(b.subarray(3));
      if (end) {
        this.#nals.push(Buffer.concat(this.#fu));
        this.#fu = undefined;
      }
    }
    // PACI (50) and reserved types are ignored.
  }
}

/** RTP payloads for one access unit; the last one carries the marker bit. */
export function packetizeH265(nals: Buffer[], mtu = 1200): Buffer[] {
  const out: Buffer[] = [];
  for (const nal of nals) {
    if (nal.length < 2) continue;
    if (nal.length <= mtu) {
      out.push(nal);
      continue;
    }
    const head = Buffer.from([((nal[0] as number) & 0x81) | (H265_FU << 1), nal[1] as number]);
    const t = type(nal);
    const body = nal.subarray(2);
    const chunk = mtu - 3;
    for (let i = 0; i < body.length; i += chunk) {
      const fu = (i === 0 ? 0x80 : 0) | (i + chunk >= body.length ? 0x40 : 0) | t;
      out.push(Buffer.concat([head, Buffer.from([fu]), body.subarray(i, i + chunk)]));
    }
  }
  return out;
}
