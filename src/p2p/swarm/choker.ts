/**
 * Choking (BEP 3's tit-for-tat): every round, unchoke the interested peers that gave us the most lately
 * (leeching) or, when seeding, the ones we have given the least so far (so a seed spreads different pieces over
 * many peers instead of feeding the fastest few); plus one optimistic unchoke, rotated every third round, so
 * newcomers get a chance to earn a slot.
 */
import type { Peer } from "./peer.ts";

export const UPLOAD_SLOTS = 4;

export class Choker {
  private round = 0;
  private optimistic: Peer | null = null;

  /** The peers to have unchoked after this round. */
  decide(peers: Peer[], seeding: boolean, slots = UPLOAD_SLOTS): Set<Peer> {
    this.round++;
    const interested = peers.filter((p) => p.peerInterested && !p.wire.closed);
    const ranked = interested.sort((a, b) =>
      seeding ? a.wire.uploaded - b.wire.uploaded : b.down.perSecond - a.down.perSecond,
    );
    const keep = new Set(ranked.slice(0, Math.max(0, slots - 1)));
    if (!this.optimistic || this.optimistic.wire.closed || this.round % 3 === 0 || keep.has(this.optimistic)) {
      const rest = ranked.filter((p) => !keep.has(p));
      this.optimistic = rest.length ? (rest[Math.floor(Math.random() * rest.length)] as Peer) : null;
    }
    if (this.optimistic?.peerInterested) keep.add(this.optimistic);
    return keep;
  }
}
