/**
 * Annex B byte streams (H.264/H.265 "start code" framing, what `ffmpeg -f h264/hevc` writes): split into NAL
 * units, and turn NAL units into the 4-byte length-prefixed form MP4 and FLV carry.
 */

/** The NAL units of an Annex B stream, start codes removed. */
export function splitAnnexB(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = -1;
  let i = 0;
  while (i + 2 < b.length) {
    if (b[i] === 0 && b[i + 1] === 0 && b[i + 2] === 1) {
      if (start >= 0) out.push(trimZeros(b.subarray(start, i)));
      i += 3;
      start = i;
    } else i++;
  }
  if (start >= 0 && start < b.length) out.push(b.subarray(start));
  return out.filter((n) => n.length > 0);
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
