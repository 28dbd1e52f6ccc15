/**
 * RTP (RFC 3550 5.1) packets and the RTCP a server needs: parse a received packet into the fields the
 * depacketizers use, build one to send, read a sender report (NTP <-> RTP time of a track) and build one.
 */
import type { RtpIn } from "./h264.ts";

export interface RtpPacket extends RtpIn {
  payloadType: number;
  ssrc: number;
}

/** The fields of an RTP packet; undefined when it is not one (too short, version not 2, bad padding/extension). */
export function parseRtp(b: Buffer): RtpPacket | undefined {
  if (b.length < 12 || (b[0] as number) >> 6 !== 2) return undefined;
  const b0 = b[0] as number;
  let off = 12 + (b0 & 0x0f) * 4;
  if (b0 & 0x10) {
    if (b.length < off + 4) return undefined;
    off += 4 + b.readUInt16BE(off + 2) * 4;
  }
  let end = b.length;
  if (b0 & 0x20) end -= b[b.length - 1] as number;
  if (off > end) return undefined;
  return {
    payloadType: (b[1] as number) & 0x7f,
    marker: ((b[1] as number) & 0x80) !== 0,
    sequenceNumber: b.readUInt16BE(2),
    timestamp: b.readUInt32BE(4),
    ssrc: b.readUInt32BE(8),
    payload: b.subarray(off, end),
  };
}

export function buildRtp(p: {
  payloadType: number;
  marker: boolean;
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
  payload: Buffer;
}): Buffer {
  const b = Buffer.allocUnsafe(12 + p.payload.length);
  b[0] = 0x80;
  b[1] = (p.marker ? 0x80 : 0) | (p.payloadType & 0x7f);
  b.writeUInt16BE(p.sequenceNumber & 0xffff, 2);
  b.writeUInt32BE(p.timestamp >>> 0, 4);
  b.writeUInt32BE(p.ssrc >>> 0, 8);
  p.payload.copy(b, 12);
  return b;
}

export interface SenderReport {
  ssrc: number;
  /** Wallclock of the report, epoch ms (from its NTP timestamp). */
  ntpMs: number;
  rtp: number;
}

const NTP_EPOCH_S = 2208988800;

/** The sender report in a compound RTCP packet, if there is one. */
export function parseSenderReport(b: Buffer): SenderReport | undefined {
  for (let i = 0; i + 4 <= b.length; ) {
    const len = (b.readUInt16BE(i + 2) + 1) * 4;
    if ((b[i] as number) >> 6 !== 2 || i + len > b.length) return undefined;
    if (b[i + 1] === 200 && len >= 28) {
      // NTP seconds wrap in February 2036 (era 1): a value with the top bit clear is after it (RFC 4330 3).
      const w = b.readUInt32BE(i + 8);
      const s = w >= 0x80000000 ? w : w + 2 ** 32;
      const f = b.readUInt32BE(i + 12);
      return {
        ssrc: b.readUInt32BE(i + 4),
        ntpMs: (s - NTP_EPOCH_S) * 1000 + (f / 2 ** 32) * 1000,
        rtp: b.readUInt32BE(i + 16),
      };
    }
    i += len;
  }
  return undefined;
}

/** A sender report (no report blocks) followed by an SDES CNAME, as RFC 3550 6.1 wants compound packets. */
export function buildSenderReport(o: {
  ssrc: number;
  ntpMs: number;
  rtp: number;
  packets: number;
  octets: number;
}): Buffer {
  const sr = Buffer.alloc(28);
  sr[0] = 0x80;
  sr[1] = 200;
  sr.writeUInt16BE(6, 2);
  sr.writeUInt32BE(o.ssrc >>> 0, 4);
  const secs = Math.floor(o.ntpMs / 1000);
  sr.writeUInt32BE((secs + NTP_EPOCH_S) >>> 0, 8);
  sr.writeUInt32BE(Math.floor(((o.ntpMs - secs * 1000) / 1000) * 2 ** 32) >>> 0, 12);
  sr.writeUInt32BE(o.rtp >>> 0, 16);
  sr.writeUInt32BE(o.packets >>> 0, 20);
  sr.writeUInt32BE(o.octets >>> 0, 24);
  const cname = Buffer.from("ami-streams");
  const items = 2 + cname.length + 1; // CNAME item + end
  const sdesLen = Math.ceil((8 + items) / 4) * 4;
  const sdes = Buffer.alloc(sdesLen);
  sdes[0] = 0x81;
  sdes[1] = 202;
  sdes.writeUInt16BE(sdesLen / 4 - 1, 2);
  sdes.writeUInt32BE(o.ssrc >>> 0, 4);
  sdes[8] = 1;
  sdes[9] = cname.length;
  cname.copy(sdes, 10);
  return Buffer.concat([sr, sdes]);
}
