/**
 * Which block to ask which peer for: finish pieces already started, then the rarest piece the peer has (ties
 * broken at random so peers spread out), then endgame (blocks already asked of someone else, when nothing
 * unrequested is left). A piece keeps which peers sent its blocks, so a bad hash is attributed, and which peers
 * refused it (a seed that would rather the swarm pass on a piece it already gave out): those are asked again
 * REFUSED_RETRY_MS later, or at once when no other peer has the piece.
 */
import { type Metainfo, pieceSize } from "../metainfo.ts";
import { Bits, MAX_BLOCK } from "../wire/messages.ts";

/** How long a peer that refused a piece is not asked for it again while another peer has it. */
export const REFUSED_RETRY_MS = 4000;

export interface BlockRequest {
  index: number;
  begin: number;
  length: number;
}

export class PieceProgress<P> {
  readonly index: number;
  readonly size: number;
  readonly data: Buffer;
  readonly blocks: number;
  readonly got: Uint8Array;
  gotCount = 0;
  /** Who each block is asked of. */
  readonly asked: Set<P>[];
  /** Who sent any block of this piece. */
  readonly sources = new Set<P>();
  /** Who rejected a request for it (BEP 6) while not choking us, and when. */
  readonly refused = new Map<P, number>();

  constructor(index: number, size: number) {
    this.index = index;
    this.size = size;
    this.data = Buffer.alloc(size);
    this.blocks = Math.ceil(size / MAX_BLOCK);
    this.got = new Uint8Array(this.blocks);
    this.asked = Array.from({ length: this.blocks }, () => new Set<P>());
  }

  block(b: number): BlockRequest {
    const begin = b * MAX_BLOCK;
    return { index: this.index, begin, length: Math.min(MAX_BLOCK, this.size - begin) };
  }
}

export class Picker<P> {
  readonly availability: Uint16Array;
  readonly active = new Map<number, PieceProgress<P>>();
  private readonly meta: Metainfo;
  private readonly have: Buffer;
  /** The clock refusals are timed by (a test passes its own). */
  private readonly now: () => number;

  constructor(meta: Metainfo, have: Buffer, now: () => number = Date.now) {
    this.meta = meta;
    this.have = have;
    this.now = now;
    this.availability = new Uint16Array(meta.pieceCount);
  }

  addBitfield(bits: Buffer, sign: 1 | -1): void {
    for (let i = 0; i < this.meta.pieceCount; i++) if (Bits.get(bits, i)) this.availability[i] += sign;
  }

  /**
   * Up to `max` block requests for a peer with bitfield `theirs`; `allowed` narrows to pieces we may ask
   * while choked (BEP 6 allowed fast), undefined when unchoked; `elsewhere(i)`: another peer has piece i (so
   * a peer that refused i lately is not asked again).
   */
  pick(
    peer: P,
    theirs: Buffer,
    max: number,
    allowed?: Set<number>,
    elsewhere: (index: number) => boolean = () => false,
  ): BlockRequest[] {
    const out: BlockRequest[] = [];
    const ok = (i: number): boolean => Bits.get(theirs, i) && !Bits.get(this.have, i) && (!allowed || allowed.has(i));
    const now = this.now();
    // A piece this peer refused lately is left to the peers that have it.
    const take = (p: PieceProgress<P>, endgame: boolean): void => {
      const refused = p.refused.get(peer);
      if (refused !== undefined && now - refused < REFUSED_RETRY_MS && elsewhere(p.index)) return;
      this.takeBlocks(p, peer, out, max, endgame);
    };
    // 1. Unasked blocks of pieces already started.
    for (const p of this.active.values()) {
      if (out.length >= max) return out;
      if (!ok(p.index)) continue;
      take(p, false);
    }
    // 2. New pieces, rarest first.
    while (out.length < max) {
      const i = this.rarest(ok);
      if (i < 0) break;
      const p = new PieceProgress<P>(i, pieceSize(this.meta, i));
      this.active.set(i, p);
      take(p, false);
    }
    // 3. Endgame: every missing piece is started and every block asked; ask this peer too.
    if (out.length < max && this.active.size > 0 && this.allAsked()) {
      for (const p of this.active.values()) {
        if (out.length >= max) break;
        if (ok(p.index)) take(p, true);
      }
    }
    return out;
  }

  private takeBlocks(p: PieceProgress<P>, peer: P, out: BlockRequest[], max: number, endgame: boolean): void {
    for (let b = 0; b < p.blocks && out.length < max; b++) {
      const asked = p.asked[b] as Set<P>;
      if (p.got[b] || asked.has(peer)) continue;
      if (asked.size > 0 && !endgame) continue;
      // Endgame asks one more peer per block, not all of them: the slow one is covered, the bytes not wasted.
      if (endgame && asked.size >= 2) continue;
      asked.add(peer);
      out.push(p.block(b));
    }
  }

  private allAsked(): boolean {
    for (const p of this.active.values())
      for (let b = 0; b < p.blocks; b++) if (!p.got[b] && (p.asked[b] as Set<P>).size === 0) return false;
    for (let i = 0; i < this.meta.pieceCount; i++) if (!Bits.get(this.have, i) && !this.active.has(i)) return false;
    return true;
  }

  private rarest(ok: (i: number) => boolean): number {
    let best = -1;
    let bestAvail = Number.POSITIVE_INFINITY;
    let ties = 0;
    for (let i = 0; i < this.meta.pieceCount; i++) {
      if (this.active.has(i) || !ok(i)) continue;
      const a = this.availability[i] as number;
      if (a < bestAvail) {
        best = i;
        bestAvail = a;
        ties = 1;
      } else if (a === bestAvail && Math.random() * ++ties < 1) best = i;
    }
    return best;
  }

  /** A block arrived; returns the piece when it is now whole (the caller verifies and stores it). */
  received(peer: P, index: number, begin: number, block: Buffer): PieceProgress<P> | undefined {
    const p = this.active.get(index);
    if (!p || begin % MAX_BLOCK !== 0) return undefined;
    const b = begin / MAX_BLOCK;
    if (b >= p.blocks || p.got[b] || block.length !== p.block(b).length) return undefined;
    block.copy(p.data, begin);
    p.got[b] = 1;
    p.gotCount++;
    p.sources.add(peer);
    return p.gotCount === p.blocks ? p : undefined;
  }

  /** Forget what `peer` was asked (choke, reject, disconnect) so others can be asked. */
  release(peer: P, req?: BlockRequest): void {
    for (const p of this.active.values()) {
      if (!req) p.refused.delete(peer);
      if (req && p.index !== req.index) continue;
      for (let b = 0; b < p.blocks; b++) if (!req || b * MAX_BLOCK === req.begin) p.asked[b]?.delete(peer);
    }
  }

  /** `peer` rejected a request for piece `index` while not choking us. */
  refuse(peer: P, index: number): void {
    this.active.get(index)?.refused.set(peer, this.now());
  }

  /** After a piece is stored (or failed its hash: start it over). */
  finish(index: number): void {
    this.active.delete(index);
  }

  /** Other peers asked for blocks of a piece (endgame cancels). */
  askedOf(index: number, begin: number): Set<P> {
    return this.active.get(index)?.asked[begin / MAX_BLOCK] ?? new Set();
  }
}
