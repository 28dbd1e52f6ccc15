/**
 * H.264 between the hub's FLV-style frames and bare NAL units: the AVCDecoderConfigurationRecord built from
 * SPS/PPS (and split back), and AVC video tag bodies (AVCC: length-prefixed NAL units, composition time in ms).
 */
import type { Frame } from "../../frame.ts";
import { videoFrame } from "../flv/tag.ts";

/** ISO 14496-15 5.2.4.1 with one SPS and one PPS; 4-byte NAL lengths. */
export function avcConfigRecord(sps: Buffer, pps: Buffer): Buffer {
  const head = Buffer.from([1, sps[1] ?? 0, sps[2] ?? 0, sps[3] ?? 0, 0xff, 0xe1]);
  const len = (n: number) => Buffer.from([n >> 8, n & 0xff]);
  return Buffer.concat([head, len(sps.length), sps, Buffer.from([1]), len(pps.length), pps]);
}

export interface AvcParams {
  sps: Buffer[];
  pps: Buffer[];
  /** Bytes in each NAL length prefix of the samples (lengthSizeMinusOne + 1). */
  lengthSize: number;
}

export function splitAvcConfig(rec: Buffer): AvcParams {
  if (rec.length < 7 || rec[0] !== 1) throw new Error("not an AVCDecoderConfigurationRecord");
  const lengthSize = ((rec[4] as number) & 3) + 1;
  const sps: Buffer[] = [];
  const pps: Buffer[] = [];
  let i = 5;
  const read = (n: number, into: Buffer[]) => {
    for (let k = 0; k < n; k++) {
      if (i + 2 > rec.length) throw new Error("AVC config truncated");
      const size = rec.readUInt16BE(i);
      i += 2;
      if (i + size > rec.length) throw new Error("AVC config truncated");
      into.push(rec.subarray(i, i + size));
      i += size;
    }
  };
  read((rec[i++] as number) & 0x1f, sps);
  if (i < rec.length) read(rec[i++] as number, pps);
  return { sps, pps, lengthSize };
}

/** The NAL units of an AVCC sample. */
export function avccNals(sample: Buffer, lengthSize: number): Buffer[] {
  const nals: Buffer[] = [];
  for (let i = 0; i + lengthSize <= sample.length; ) {
    const size = sample.readUIntBE(i, lengthSize);
    i += lengthSize;
    if (size === 0 || i + size > sample.length) break;
    nals.push(sample.subarray(i, i + size));
    i += size;
  }
  return nals;
}

/** AVC sequence header frame (AVCPacketType 0). */
export function avcConfigFrame(dts: number, record: Buffer): Frame {
  return videoFrame(dts, Buffer.concat([Buffer.from([0x17, 0, 0, 0, 0]), record]));
}

/** AVC NALU frame (AVCPacketType 1) with 4-byte lengths; `ctsMs` = pts - dts. */
export function avcNaluFrame(dts: number, nals: Buffer[], keyframe: boolean, ctsMs = 0): Frame {
  let size = 5;
  for (const n of nals) size += 4 + n.length;
  // One allocation, the NAL units copied in behind their lengths (the caller's buffers are not kept).
  const body = Buffer.allocUnsafe(size);
  body[0] = keyframe ? 0x17 : 0x27;
  body[1] = 1;
  body.writeIntBE(Math.round(ctsMs), 2, 3);
  let p = 5;
  for (const n of nals) {
    body.writeUInt32BE(n.length, p);
    n.copy(body, p + 4);
    p += 4 + n.length;
  }
  return videoFrame(dts, body);
}

/** Composition time offset (ms, signed 24-bit) of an AVC video tag body. */
export const avcCts = (data: Buffer): number => (data.length >= 5 ? data.readIntBE(2, 3) : 0);
