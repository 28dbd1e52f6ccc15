/**
 * Peers announced to us (announce_peer), per infohash, each forgotten 30 minutes after its last announce (BEP 5
 * clients re-announce every ~15). Bounded: at most `perHash` peers per infohash (the stalest is evicted) and
 * `maxHashes` infohashes (the least recently announced one goes), so announce floods cost a fixed amount of memory.
 */
import type { NodeAddr } from "./id.ts";
import { addrKey } from "./id.ts";

export const PEER_TTL_MS = 30 * 60_000;

export interface PeerStoreOptions {
  perHash?: number;
  maxHashes?: number;
  ttlMs?: number;
  now?: () => number;
}

export class PeerStore {
  /** hex infohash -> (host:port -> peer and expiry); Map order is announce order, oldest first. */
  private readonly hashes = new Map<string, Map<string, { peer: NodeAddr; expires: number }>>();
  private readonly perHash: number;
  private readonly maxHashes: number;
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(o: PeerStoreOptions = {}) {
    this.perHash = o.perHash ?? 100;
    this.maxHashes = o.maxHashes ?? 2000;
    this.ttlMs = o.ttlMs ?? PEER_TTL_MS;
    this.now = o.now ?? Date.now;
  }

  add(infoHash: Buffer, peer: NodeAddr): void {
    const h = infoHash.toString("hex");
    let peers = this.hashes.get(h);
    if (peers) this.hashes.delete(h);
    else {
      peers = new Map();
      if (this.hashes.size >= this.maxHashes) {
        const oldest = this.hashes.keys().next().value;
        if (oldest !== undefined) this.hashes.delete(oldest);
      }
    }
    this.hashes.set(h, peers);
    const k = addrKey(peer);
    peers.delete(k);
    peers.set(k, { peer: { host: peer.host, port: peer.port }, expires: this.now() + this.ttlMs });
    if (peers.size > this.perHash) {
      const oldest = peers.keys().next().value;
      if (oldest !== undefined) peers.delete(oldest);
    }
  }

  /** Live peers for `infoHash`, newest first, at most `max` (a get_peers answer must fit one datagram). */
  get(infoHash: Buffer, max = 50): NodeAddr[] {
    const h = infoHash.toString("hex");
    const peers = this.hashes.get(h);
    if (!peers) return [];
    const t = this.now();
    const out: NodeAddr[] = [];
    for (const [k, v] of [...peers].reverse()) {
      if (v.expires <= t) peers.delete(k);
      else if (out.length < max) out.push(v.peer);
    }
    if (peers.size === 0) this.hashes.delete(h);
    return out;
  }

  /** Drop expired entries (called periodically). */
  sweep(): void {
    const t = this.now();
    for (const [h, peers] of this.hashes) {
      for (const [k, v] of peers) if (v.expires <= t) peers.delete(k);
      if (peers.size === 0) this.hashes.delete(h);
    }
  }

  get stats(): { infohashes: number; peers: number } {
    let peers = 0;
    for (const p of this.hashes.values()) peers += p.size;
    return { infohashes: this.hashes.size, peers };
  }
}
