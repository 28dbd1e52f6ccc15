/**
 * Choking (BEP 3's tit-for-tat): every round, unchoke the interested peers that gave us the most lately, plus one
 * optimistic unchoke, rotated every third round, so newcomers get a chance to earn a slot. A seed has nothing to
 * earn: every slot goes to the interested peers it has given the least so far (counting what it refused them as
 * given: torrent.ts nextServe), so the slots rotate round-robin and its pieces spread over many peers instead of
 * feeding the fastest few (or a lucky optimistic one), and a peer that only wants what the swarm has moves on.
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
      seeding
        ? a.wire.uploaded + a.refusedBytes - (b.wire.uploaded + b.refusedBytes)
        : b.down.perSecond - a.down.perSecond,
    );
    if (seeding) {
      this.optimistic = null;
      return new Set(ranked.slice(0, slots));
    }
    const keep = new Set(ranked.slice(0, Math.max(0, slots - 1)));
    if (!this.optimistic || this.optimistic.wire.closed || this.round % 3 === 0 || keep.has(this.optimistic)) {
      const rest = ranked.filter((p) => !keep.has(p));
      this.optimistic = rest.length ? (rest[Math.floor(Math.random() * rest.length)] as Peer) : null;
    }
    if (this.optimistic?.peerInterested) keep.add(this.optimistic);
    return keep;
  }
}
