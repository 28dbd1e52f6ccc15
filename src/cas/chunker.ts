/**
 * FastCDC content-defined chunking (Xia et al., USENIX ATC '16): a gear rolling hash with cut-point skipping
 * (nothing is hashed below `min`) and normalized chunking level 2 (a stricter mask before `avg`, a looser one
 * after), so chunk sizes cluster around `avg` and an insertion only changes the chunks around it.
 * The fingerprint is 32 bits (a Uint32 stays a V8 small integer; 64-bit BigInt would be ~20x slower); the masks
 * take its top bits, which mix the last 32 bytes, as the paper's spread-out 64-bit masks do for its window.
 */

export interface ChunkParams {
  min: number;
  avg: number;
  max: number;
}

/** splitmix32 from a fixed seed: the gear table must be identical everywhere or no chunk would dedupe. */
function gearTable(seed: number): Uint32Array {
  const t = new Uint32Array(256);
  let s = seed >>> 0;
  for (let i = 0; i < 256; i++) {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    t[i] = (z ^ (z >>> 16)) >>> 0;
  }
  return t;
}

export const GEAR = gearTable(0x41_4d_49_43); // "AMIC"
/** The same bits as int32: Uint32 values above 2^31 would be loaded as doubles in the hot loop. */
const GEAR_I32 = new Int32Array(GEAR.buffer);

const topBits = (n: number) => (n >= 32 ? 0xffffffff : ((1 << n) - 1) << (32 - n)) | 0;

export interface Masks {
  small: number;
  large: number;
}

export function masksFor(avg: number): Masks {
  const bits = Math.round(Math.log2(avg));
  return { small: topBits(bits + 2), large: topBits(bits - 2) };
}

/** Length of the first chunk of buf[start, end): a cut point, or end - start when the data ends first. */
export function cutPoint(buf: Uint8Array, start: number, end: number, p: ChunkParams, m: Masks): number {
  let n = end - start;
  if (n <= p.min) return n;
  if (n > p.max) n = p.max;
  const normal = Math.min(n, p.avg);
  const g = GEAR_I32;
  let fp = 0;
  let i = start + p.min;
  const stopNormal = start + normal;
  const stop = start + n;
  const ms = m.small;
  const ml = m.large;
  for (; i < stopNormal; i++) {
    fp = ((fp << 1) + g[buf[i]]) | 0;
    if ((fp & ms) === 0) return i + 1 - start;
  }
  for (; i < stop; i++) {
    fp = ((fp << 1) + g[buf[i]]) | 0;
    if ((fp & ml) === 0) return i + 1 - start;
  }
  return n;
}

/**
 * Cut a byte stream into chunks. Memory is bounded by one working buffer (a few times `max` plus one input
 * piece): a cut is only decided once `max` bytes are buffered or the input has ended, because the cut point
 * depends on the bytes up to `max`. Each yielded chunk is its own copy (callers keep it while it is written).
 */
export async function* chunkStream(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  p: ChunkParams,
): AsyncGenerator<Buffer> {
  const m = masksFor(p.avg);
  let buf = Buffer.allocUnsafe(p.max * 3);
  let start = 0;
  let end = 0;
  const drain = function* (final: boolean): Generator<Buffer> {
    while (end - start >= p.max || (final && end > start)) {
      const n = cutPoint(buf, start, end, p, m);
      yield Buffer.from(buf.subarray(start, start + n));
      start += n;
    }
  };
  for await (const piece of source) {
    let off = 0;
    while (off < piece.length) {
      if (start > 0 && buf.length - end < p.max) {
        buf.copy(buf, 0, start, end);
        end -= start;
        start = 0;
      }
      if (buf.length - end === 0) {
        const bigger = Buffer.allocUnsafe(buf.length * 2);
        buf.copy(bigger, 0, start, end);
        end -= start;
        start = 0;
        buf = bigger;
      }
      const take = Math.min(piece.length - off, buf.length - end);
      buf.set(piece.subarray(off, off + take), end);
      end += take;
      off += take;
      yield* drain(false);
    }
  }
  yield* drain(true);
}
