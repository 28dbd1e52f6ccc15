/**
 * A slab allocator for media bytes: small and medium buffers are carved one after another out of large
 * ArrayBuffers instead of each getting its own. V8 schedules full GCs by external (ArrayBuffer) memory
 * allocated, and one allocation per frame or part made them the main CPU cost of remuxing. Consecutive
 * allocations are adjacent in memory, so `join` can merge them (a part's moof + mdat, a segment's parts) without
 * copying. A slab is freed by the GC once no view of it is left.
 */

export class Slab {
  readonly #size: number;
  #buf: Buffer | undefined;
  #pos = 0;

  /** Nothing is allocated until the first `take`. */
  constructor(size = 1024 * 1024) {
    this.#size = size;
  }

  /** `n` uninitialised bytes; large requests get their own buffer. */
  take(n: number): Buffer {
    if (n > this.#size / 4) return Buffer.allocUnsafeSlow(n);
    if (!this.#buf || this.#pos + n > this.#size) {
      this.#buf = Buffer.allocUnsafeSlow(this.#size);
      this.#pos = 0;
    }
    const b = this.#buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return b;
  }
}

/** Buffers as one: a view when they are adjacent in one ArrayBuffer (no copy), else a concatenation. */
export function join(parts: Buffer[]): Buffer {
  const first = parts[0];
  if (!first) return Buffer.alloc(0);
  if (parts.length === 1) return first;
  let end = first.byteOffset + first.length;
  for (let i = 1; i < parts.length; i++) {
    const p = parts[i] as Buffer;
    if (p.buffer !== first.buffer || p.byteOffset !== end) return Buffer.concat(parts);
    end += p.length;
  }
  return Buffer.from(first.buffer, first.byteOffset, end - first.byteOffset);
}
