/**
 * MPEG-TS constants and the bits both directions share (ISO 13818-1): packet size, stream types, the PSI
 * CRC-32 (polynomial 0x04C11DB7, MSB first, no reflection), 33-bit timestamps, ADTS and the Opus control header.
 */

export const TS_PACKET = 188;
export const SYNC = 0x47;
export const PID_PAT = 0;
export const PID_NULL = 0x1fff;

export const STREAM_TYPE = { AAC_ADTS: 0x0f, H264: 0x1b, H265: 0x24, PRIVATE_PES: 0x06 } as const;

/** 2^33: PTS/DTS/PCR base wrap. */
export const WRAP = 8589934592;

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 24;
    for (let k = 0; k < 8; k++) c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1;
    t[i] = c >>> 0;
  }
  return t;
})();

export function crc32Mpeg(b: Buffer, start = 0, end = b.length): number {
  let crc = 0xffffffff;
  for (let i = start; i < end; i++)
    crc = ((crc << 8) ^ (CRC_TABLE[((crc >>> 24) ^ (b[i] as number)) & 0xff] as number)) >>> 0;
  return crc >>> 0;
}

/** A 5-byte PES timestamp field (marker bits set) with the 4-bit prefix (0b0010 PTS only, 0b0011 PTS, 0b0001 DTS). */
export function writeTimestamp(b: Buffer, p: number, prefix: number, ts: number): void {
  const t = ((ts % WRAP) + WRAP) % WRAP;
  const hi = Math.floor(t / 1073741824); // bits 32..30
  const low30 = t % 1073741824;
  b[p] = (prefix << 4) | (hi << 1) | 1;
  b[p + 1] = (low30 >>> 22) & 0xff;
  b[p + 2] = (((low30 >>> 15) & 0x7f) << 1) | 1;
  b[p + 3] = (low30 >>> 7) & 0xff;
  b[p + 4] = ((low30 & 0x7f) << 1) | 1;
}

export function readTimestamp(b: Buffer, p: number): number {
  const hi = ((b[p] as number) >> 1) & 7;
  const low30 =
    ((b[p + 1] as number) << 22) |
    (((b[p + 2] as number) >> 1) << 15) |
    ((b[p + 3] as number) << 7) |
    ((b[p + 4] as number) >> 1);
  return hi * 1073741824 + (low30 >>> 0);
}

/** AAC sampling frequency index (ISO 14496-3 1.6.3.3). */
export const AAC_RATES = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

/** Vorbis channel order (RFC 7845 5.1.1.2) for Opus mapping family 1, 3..8 channels: streams, coupled, mapping. */
export const OPUS_VORBIS_MAPPING: Record<number, [number, number, number[]]> = {
  3: [2, 1, [0, 2, 1]],
  4: [2, 2, [0, 1, 2, 3]],
  5: [3, 2, [0, 4, 1, 2, 3]],
  6: [4, 2, [0, 4, 1, 2, 3, 5]],
  7: [4, 3, [0, 4, 1, 2, 3, 5, 6]],
  8: [5, 3, [0, 6, 1, 2, 3, 4, 5, 7]],
};
