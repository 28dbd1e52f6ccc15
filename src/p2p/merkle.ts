/**
 * BEP 52 merkle trees: SHA-256 over 16 KiB blocks, a binary tree padded to a power of two with zero leaves.
 * A file's `pieces root` is the tree's root; a piece's hash (its entry in `piece layers`) is the root of the
 * subtree over its pieceLength / 16 KiB blocks, the last piece padded with zero leaves like the whole tree.
 */
import { createHash } from "node:crypto";

export const BLOCK = 16 * 1024;
const ZERO = Buffer.alloc(32);

const sha256 = (b: Uint8Array): Buffer => createHash("sha256").update(b).digest();
const pair = (a: Buffer, b: Buffer): Buffer => createHash("sha256").update(a).update(b).digest();

/** Root of a subtree whose leaves are all zero, `leaves` (a power of two) wide. */
export function zeroRoot(leaves: number): Buffer {
  let h: Buffer = ZERO;
  for (let n = 1; n < leaves; n *= 2) h = pair(h, h);
  return h;
}

/** Root over `hashes` padded to `width` (a power of two) with `pad` (the root of an all-zero subtree of the level). */
export function rootOf(hashes: Buffer[], width: number, pad: Buffer = ZERO): Buffer {
  let level = hashes.slice();
  let padH = pad;
  let w = width;
  while (level.length < w) level.push(padH);
  while (w > 1) {
    const next: Buffer[] = [];
    for (let i = 0; i < w; i += 2) next.push(pair(level[i] as Buffer, level[i + 1] as Buffer));
    level = next;
    padH = pair(padH, padH);
    w /= 2;
  }
  return level[0] ?? ZERO;
}

export const nextPow2 = (n: number): number => {
  let p = 1;
  while (p < n) p *= 2;
  return p;
};

/** Leaf hashes of `data` (16 KiB blocks; the last may be short). */
export function blockHashes(data: Uint8Array): Buffer[] {
  const out: Buffer[] = [];
  for (let o = 0; o < data.length; o += BLOCK) out.push(sha256(data.subarray(o, Math.min(o + BLOCK, data.length))));
  return out;
}

/** A piece's hash for the piece layer: the root over its blocks, padded to pieceLength / 16 KiB leaves. */
export function pieceRoot(data: Uint8Array, pieceLength: number): Buffer {
  return rootOf(blockHashes(data), pieceLength / BLOCK);
}

/**
 * Incremental hashing of one file for a v2 torrent: feed its bytes in order, then `finish` gives the pieces root
 * and the piece layer (empty for a file of at most one piece, which BEP 52 leaves out of `piece layers`).
 */
export class FileMerkle {
  private readonly leavesPerPiece: number;
  private readonly pieceLength: number;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private leaves: Buffer[] = [];
  private layer: Buffer[] = [];
  length = 0;

  constructor(pieceLength: number) {
    this.pieceLength = pieceLength;
    this.leavesPerPiece = pieceLength / BLOCK;
  }

  update(chunk: Uint8Array): void {
    this.length += chunk.length;
    this.pending.push(Buffer.from(chunk));
    this.pendingBytes += chunk.length;
    if (this.pendingBytes < BLOCK) return;
    const all = Buffer.concat(this.pending);
    let o = 0;
    for (; o + BLOCK <= all.length; o += BLOCK) this.leaf(sha256(all.subarray(o, o + BLOCK)));
    this.pending = o < all.length ? [all.subarray(o)] : [];
    this.pendingBytes = all.length - o;
  }

  private leaf(h: Buffer): void {
    this.leaves.push(h);
    if (this.leaves.length === this.leavesPerPiece) {
      this.layer.push(rootOf(this.leaves, this.leavesPerPiece));
      this.leaves = [];
    }
  }

  finish(): { root: Buffer; layer: Buffer[] } {
    if (this.pendingBytes > 0) this.leaf(sha256(Buffer.concat(this.pending)));
    this.pending = [];
    this.pendingBytes = 0;
    if (this.length === 0) return { root: ZERO, layer: [] };
    if (this.length <= this.pieceLength) {
      // One piece or less: the tree is only as wide as its blocks need, and there is no piece layer.
      const leaves = this.layer.length ? [] : this.leaves;
      const root = this.layer.length ? (this.layer[0] as Buffer) : rootOf(leaves, nextPow2(leaves.length));
      return { root, layer: [] };
    }
    if (this.leaves.length) this.layer.push(rootOf(this.leaves, this.leavesPerPiece));
    this.leaves = [];
    const root = rootOf(this.layer, nextPow2(this.layer.length), zeroRoot(this.leavesPerPiece));
    return { root, layer: this.layer };
  }
}
