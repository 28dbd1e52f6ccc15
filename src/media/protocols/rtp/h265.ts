/**
 * H.265 over RTP (RFC 7798, no DONL: sprop-max-don-diff 0): access units <-> RTP payloads. Receiving handles
 * single NAL units, aggregation packets (AP, type 48) and fragmentation units (FU, type 49); sending uses single
 * NAL units and FUs. Same loss rules as the H.264 depacketizer (h264.ts): a unit with a hole is dropped.
 */
import { NalDepacketizer } from "./h264.ts";

export const H265_AP = 48;
export const H265_FU = 49;
const type = (b: Buffer): number => ((b[0] ?? 0) >> 1) & 0x3f;

export class H265Depacketizer extends NalDepacketizer {
  protected payload(b: Buffer): void {
    if (b.length < 3) return;
    const t = type(b);
    if (t < H265_AP) this.nals.push(b);
    else if (t === H265_AP) this.aggregated(b, 2, 2);
    else if (t === H265_FU) {
      const fu = b[2] as number;
      const header = () => Buffer.from([((b[0] as number) & 0x81) | ((fu & 0x3f) << 1), b[1] as number]);
      this.fragment((fu & 0x80) !== 0, (fu & 0x40) !== 0, header, b.subarray(3));
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
