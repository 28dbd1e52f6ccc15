/**
 * H.264 over RTP (RFC 6184, packetization-mode 1): access units <-> RTP payloads. Receiving handles single NAL
 * units, STAP-A and FU-A; sending uses single NAL units and FU-A (what browsers and werift accept).
 */

export const NAL = { IDR: 5, SEI: 6, SPS: 7, PPS: 8, AUD: 9, STAP_A: 24, FU_A: 28 } as const;

export const nalType = (nal: Buffer): number => (nal[0] ?? 0) & 0x1f;

export interface RtpIn {
  sequenceNumber: number;
  timestamp: number;
  marker: boolean;
  payload: Buffer;
}

export interface AccessUnit {
  /** RTP timestamp (90 kHz) shared by the unit's packets. */
  timestamp: number;
  nals: Buffer[];
}

/**
 * Reassembles access units from NAL-unit RTP payloads (H.264 here, H.265 in h265.ts: they differ only in their
 * NAL header and in how aggregation and fragmentation packets are marked). A unit ends at the marker bit, or when
 * the timestamp changes (a lost marker). A sequence gap drops the unit being built: the caller then waits for the
 * next IDR, so it never emits a unit with holes in it.
 */
/** An access unit (or one fragmented NAL unit) growing past this is dropped: a peer that never ends one. */
export const MAX_UNIT_BYTES = 16 * 1024 * 1024;
/** NAL units per access unit beyond which it is dropped (a stream of tiny NAL units under one timestamp). */
export const MAX_UNIT_NALS = 4096;

/** Packets in a row numbered at or before the last one, after which the numbering is taken as restarted. */
export const MAX_LATE_RUN = 64;

export abstract class NalDepacketizer {
  protected nals: Buffer[] = [];
  #bytes = 0;
  #lateRun = 0;
  #fu: Buffer[] | undefined;
  #ts: number | undefined;
  #seq: number | undefined;
  protected broken = false;
  /** Units dropped because packets were lost. */
  dropped = 0;
  /** Duplicate or out-of-order packets ignored. */
  late = 0;

  push(p: RtpIn): AccessUnit[] {
    const out: AccessUnit[] = [];
    if (this.#seq !== undefined) {
      const step = ((p.sequenceNumber - this.#seq) << 16) >> 16;
      // A duplicate (a retransmission) or a packet that arrives after later ones: its unit is already gone.
      // Many in a row are a sender that restarted its numbering further back: followed from there.
      if (step <= 0 && ++this.#lateRun < MAX_LATE_RUN) {
        this.late++;
        return out;
      }
      if (step !== 1 && (this.nals.length > 0 || this.#fu)) this.broken = true;
    }
    this.#lateRun = 0;
    if (this.#ts !== undefined && p.timestamp !== this.#ts) this.#finish(out);
    this.#seq = p.sequenceNumber;
    this.#ts = p.timestamp;
    if (!this.broken) {
      this.#bytes += p.payload.length;
      if (this.#bytes > MAX_UNIT_BYTES) this.#giveUp();
      else {
        this.payload(p.payload);
        if (this.nals.length > MAX_UNIT_NALS) this.#giveUp();
      }
    }
    if (p.marker) this.#finish(out);
    return out;
  }

  /** One RTP payload: a single NAL unit, an aggregation (`aggregated`) or a fragment (`fragment`). */
  protected abstract payload(b: Buffer): void;

  /** NAL units behind 16-bit sizes from `from` on (STAP-A, AP); a size under `minSize` or past the end breaks the unit. */
  protected aggregated(b: Buffer, from: number, minSize: number): void {
    for (let i = from; i + 2 <= b.length; ) {
      const size = b.readUInt16BE(i);
      i += 2;
      if (size < minSize || i + size > b.length) {
        this.broken = true;
        return;
      }
      this.nals.push(b.subarray(i, i + size));
      i += size;
    }
  }

  /**
   * A fragment (FU-A, FU): `header` rebuilds the NAL header on the start fragment, `body` is the fragment's
   * payload. A middle or last fragment without its start means the start was lost.
   */
  protected fragment(start: boolean, end: boolean, header: () => Buffer, body: Buffer): void {
    if (start) this.#fu = [header()];
    else if (!this.#fu) {
      this.broken = true;
      return;
    }
    this.#fu.push(body);
    if (end) {
      this.nals.push(Buffer.concat(this.#fu));
      this.#fu = undefined;
    }
  }

  /** The unit is too big: what was collected is let go now, the rest of it ignored up to its end. */
  #giveUp(): void {
    this.broken = true;
    this.nals = [];
    this.#fu = undefined;
  }

  #finish(out: AccessUnit[]): void {
    if (this.broken) this.dropped++;
    else if (this.nals.length > 0 && this.#ts !== undefined) out.push({ timestamp: this.#ts, nals: this.nals });
    this.nals = [];
    this.#fu = undefined;
    this.broken = false;
    this.#bytes = 0;
    this.#ts = undefined;
  }
}

/** H.264 (packetization-mode 1): single NAL units, STAP-A, FU-A. */
export class H264Depacketizer extends NalDepacketizer {
  protected payload(b: Buffer): void {
    if (b.length < 1) return;
    const type = nalType(b);
    if (type >= 1 && type <= 23) this.nals.push(b);
    else if (type === NAL.STAP_A) this.aggregated(b, 1, 1);
    else if (type === NAL.FU_A && b.length >= 3) {
      const fu = b[1] as number;
      const header = () => Buffer.from([((b[0] as number) & 0xe0) | (fu & 0x1f)]);
      this.fragment((fu & 0x80) !== 0, (fu & 0x40) !== 0, header, b.subarray(2));
    }
    // STAP-B, MTAP and FU-B are not used in packetization-mode 1; they are ignored.
  }
}

/** RTP payloads for one access unit; the last one carries the marker bit. */
export function packetizeH264(nals: Buffer[], mtu = 1200): Buffer[] {
  const out: Buffer[] = [];
  for (const nal of nals) {
    if (nal.length === 0) continue;
    if (nal.length <= mtu) {
      out.push(nal);
      continue;
    }
    const hdr = nal[0] as number;
    const indicator = (hdr & 0xe0) | NAL.FU_A;
    const body = nal.subarray(1);
    const chunk = mtu - 2;
    for (let i = 0; i < body.length; i += chunk) {
      const first = i === 0;
      const last = i + chunk >= body.length;
      const fuHeader = (first ? 0x80 : 0) | (last ? 0x40 : 0) | (hdr & 0x1f);
      out.push(Buffer.concat([Buffer.from([indicator, fuHeader]), body.subarray(i, i + chunk)]));
    }
  }
  return out;
}
