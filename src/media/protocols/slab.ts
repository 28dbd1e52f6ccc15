/**
 * A slab allocator for media bytes: small and medium buffers are carved one after another out of large
 * ArrayBuffers instead of each getting its own. V8 schedules full GCs by external (ArrayBuffer) memory
 * allocated, and one allocation per frame or part made them the main CPU cost of remuxing. Consecutive
 * allocations are adjacent in memory, so `join` can merge them (a part's moof + mdat, a segment's parts) without
 * copying. A slab is freed by the GC once no view of it is left.
 *
 * Recycling (`recycle: true`, the HLS packager's muxer): a slab whose bytes are accounted for is reused instead
 * of a new one being allocated, which takes the steady-state full GCs out of remuxing (every new slab counts
 * towards V8's next mark-compact). The owner of the views (CmafTimeline) says what it holds: `retain` and
 * `release` per view it keeps, `handOut` when a view is handed to code that does not say when it is done (the
 * slab is then never reused: the GC frees it as before). A slab goes back to a small pool once it is no longer
 * being carved, nothing retains it and nothing escaped from it.
 */

interface SlabState {
  refs: number;
  escaped: boolean;
  /** Still being carved by its Slab. */
  active: boolean;
}

/** Recyclable slabs (weak: a slab whose state is never settled is left to the GC). */
const states = new WeakMap<ArrayBuffer, SlabState>();
/** Free slabs by size, ready for reuse. */
const pool = new Map<number, ArrayBuffer[]>();
/** Free slabs kept per size: beyond this, a free slab is left to the GC. */
const POOL_MAX = 2;

export class Slab {
  readonly #size: number;
  readonly #recycle: boolean;
  #buf: Buffer | undefined;
  #pos = 0;

  /** Nothing is allocated until the first `take`. */
  constructor(size = 1024 * 1024, opts: { recycle?: boolean } = {}) {
    this.#size = size;
    this.#recycle = opts.recycle ?? false;
  }

  /** `n` uninitialised bytes; large requests get their own buffer. */
  take(n: number): Buffer {
    if (n > this.#size / 4) return Buffer.allocUnsafeSlow(n);
    if (!this.#buf || this.#pos + n > this.#size) {
      const old = this.#buf;
      this.#buf = this.#recycle ? recycled(this.#size) : Buffer.allocUnsafeSlow(this.#size);
      // Retired after the next one is taken: a slab is not reused the moment it fills.
      if (this.#recycle && old) retire(old.buffer as ArrayBuffer);
      this.#pos = 0;
    }
    const b = this.#buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return b;
  }

  /** The owner is done taking (its stream ended): the current slab may be recycled once released. */
  close(): void {
    if (this.#recycle && this.#buf) retire(this.#buf.buffer as ArrayBuffer);
    this.#buf = undefined;
  }
}

/** Recycling slabs taken since start: newly allocated, and reused from the pool (tests, profiling). */
export const slabCounts = { fresh: 0, reused: 0 };

/** A slab from the pool, or a new one, registered for recycling. */
function recycled(size: number): Buffer {
  let ab = pool.get(size)?.pop();
  if (ab) slabCounts.reused++;
  else {
    slabCounts.fresh++;
    ab = Buffer.allocUnsafeSlow(size).buffer as ArrayBuffer;
  }
  states.set(ab, { refs: 0, escaped: false, active: true });
  return Buffer.from(ab, 0, size);
}

function retire(ab: ArrayBuffer): void {
  const s = states.get(ab);
  if (!s) return;
  s.active = false;
  settle(ab, s);
}

function settle(ab: ArrayBuffer, s: SlabState): void {
  if (s.active || s.escaped || s.refs > 0) return;
  states.delete(ab);
  const free = pool.get(ab.byteLength) ?? [];
  pool.set(ab.byteLength, free);
  if (free.length < POOL_MAX) free.push(ab);
}

/** The caller keeps `b` until it calls `release(b)` once (no-op for buffers not from a recycling slab). */
export function retain(b: Buffer): void {
  const s = states.get(b.buffer as ArrayBuffer);
  if (s) s.refs++;
}

/** The caller no longer holds `b` (one `retain` each). */
export function release(b: Buffer): void {
  const ab = b.buffer as ArrayBuffer;
  const s = states.get(ab);
  if (!s) return;
  s.refs--;
  settle(ab, s);
}

/** `b` goes where nobody says when it is done with it: its slab is never reused. */
export function handOut(b: Buffer): void {
  const s = states.get(b.buffer as ArrayBuffer);
  if (s) s.escaped = true;
}

/** Free slabs in the pool (tests). */
export function pooledSlabs(): number {
  let n = 0;
  for (const f of pool.values()) n += f.length;
  return n;
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
