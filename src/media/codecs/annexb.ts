/**
 * Annex B byte streams (H.264/H.265 "start code" framing, what `ffmpeg -f h264/hevc` writes): split into NAL
 * units, and turn NAL units into the 4-byte length-prefixed form MP4 and FLV carry.
 */

const START_CODE = Buffer.from([0, 0, 1]);

/** The NAL units of an Annex B stream, start codes removed (start codes found by the native indexOf). */
export function splitAnnexB(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let i = b.indexOf(START_CODE);
  while (i >= 0) {
    const start = i + 3;
    const next = start < b.length ? b.indexOf(START_CODE, start) : -1;
    const nal = next < 0 ? b.subarray(start) : trimZeros(b.subarray(start, next));
    if (nal.length > 0) out.push(nal);
    i = next;
  }
  return out;
}

/** A 4-byte start code leaves a zero byte at the end of the previous NAL unit. */
function trimZeros(n: Buffer): Buffer {
  let end = n.length;
  while (end > 0 && n[end - 1] === 0) end--;
  return n.subarray(0, end);
}

/** NAL units with 4-byte big-endian length prefixes. */
export function lengthPrefixed(nals: Buffer[]): Buffer {
  const parts: Buffer[] = [];
  for (const n of nals) {
    const len = Buffer.allocUnsafe(4);
    len.writeUInt32BE(n.length);
    parts.push(len, n);
  }
  return Buffer.concat(parts);
}
