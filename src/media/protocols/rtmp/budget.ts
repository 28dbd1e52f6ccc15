/**
 * Memory accounting for RTMP chunk reassembly: the budget all connections share, and freeing our own buffers
 * without waiting for the GC.
 */

/** A chunk reader as the shared budget sees it. */
export interface Holder {
  /** Bytes it holds now. */
  readonly held: number;
  /** Release everything and close its connection. */
  evict(why: string): void;
}

/**
 * Bytes that partial messages of all connections may hold together. Without it, a few hundred connections each
 * within their own limit could still take the process's memory. When it is full, the reader holding the most is
 * evicted (its connection closed), not the one asking: a real publisher holds one frame at a time, so connections
 * that park partial messages cannot lock it out by filling the budget first.
 */
export class ByteBudget {
  readonly limit: number;
  used = 0;
  readonly readers = new Set<Holder>();

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Evict the largest holders other than `asking` until `n` more bytes fit; false when they cannot. */
  reclaim(n: number, asking: Holder): boolean {
    while (this.used + n > this.limit) {
      let top: Holder | undefined;
      for (const r of this.readers) if (!top || r.held > top.held) top = r;
      if (!top || top === asking || top.held <= asking.held + n) return false;
      top.evict(`it held the most (${top.held} bytes) when partial messages of all connections reached ${this.limit}`);
    }
    return true;
  }
}

/**
 * Free a buffer we allocated ourselves (its own ArrayBuffer) now, not at the next GC: when a hostile peer's
 * partial messages are dropped, nothing else would make the GC run, and the memory would stay taken.
 */
export function free(b: Buffer): void {
  const ab = b.buffer;
  if (ab instanceof ArrayBuffer && b.byteOffset === 0 && ab.byteLength === b.length && ab.byteLength > 0)
    ab.transfer(0);
}
