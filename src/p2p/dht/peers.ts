/**
 * Peers announced to us (announce_peer), per infohash, each forgotten 30 minutes after its last announce (BEP 5
 * clients re-announce every ~15). Bounded: at most `perHash` peers per infohash (the stalest is evicted) and
 * `maxHashes` infohashes (the least recently announced one goes), so announce floods cost a fixed amount of memory.
 * One IP holds at most `perIp` entries (its further new announces are ignored until some expire): announces need
 * a token bound to the announcer's IP, so without this cap one host could push everyone else out of the store by
 * announcing to maxHashes random infohashes.
 */
import type { NodeAddr } from "./id.ts";
import { addrKey } from "./id.ts";

export const PEER_TTL_MS = 30 * 60_000;

export interface PeerStoreOptions {
  perHash?: number;
  maxHashes?: number;
  perIp?: number;
  ttlMs?: number;
  now?: () => number;
}

export class PeerStore {
  /** hex infohash -> (host:port -> peer and expiry); Map order is announce order, oldest first. */
  private readonly hashes = new Map<string, Map<string, { peer: NodeAddr; expires: number }>>();
  private readonly perHash: number;
  private readonly maxHashes: number;
  private readonly perIp: number;
  /** Entries per announcing host. */
  private readonly byIp = new Map<string, number>();
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(o: PeerStoreOptions = {}) {
    this.perHash = o.perHash ?? 100;
    this.maxHashes = o.maxHashes ?? 2000;
    this.perIp = o.perIp ?? 32;
    this.ttlMs = o.ttlMs ?? PEER_TTL_MS;
    this.now = o.now ?? Date.now;
  }

  add(infoHash: Buffer, peer: NodeAddr): void {
    const h = infoHash.toString("hex");
    const k = addrKey(peer);
    let peers = this.hashes.get(h);
    const known = peers?.has(k) ?? false;
    if (!known && (this.byIp.get(peer.host) ?? 0) >= this.perIp) return;
    if (peers) this.hashes.delete(h);
    else {
      peers = new Map();
      if (this.hashes.size >= this.maxHashes) {
        const oldest = this.hashes.keys().next().value;
        if (oldest !== undefined) this.dropHash(oldest);
      }
    }
    this.hashes.set(h, peers);
    if (known) peers.delete(k);
    else this.byIp.set(peer.host, (this.byIp.get(peer.host) ?? 0) + 1);
    peers.set(k, { peer: { host: peer.host, port: peer.port }, expires: this.now() + this.ttlMs });
    if (peers.size > this.perHash) {
      const oldest = peers.keys().next().value;
      if (oldest !== undefined) this.drop(peers, oldest);
    }
  }

  private drop(peers: Map<string, { peer: NodeAddr }>, k: string): void {
    const e = peers.get(k);
    if (!e) return;
    peers.delete(k);
    const n = (this.byIp.get(e.peer.host) ?? 1) - 1;
    if (n > 0) this.byIp.set(e.peer.host, n);
    else this.byIp.delete(e.peer.host);
  }

  private dropHash(h: string): void {
    const peers = this.hashes.get(h);
    if (peers) for (const k of [...peers.keys()]) this.drop(peers, k);
    this.hashes.delete(h);
  }

  /** Live peers for `infoHash`, newest first, at most `max` (a get_peers answer must fit one datagram). */
  get(infoHash: Buffer, max = 50): NodeAddr[] {
    const h = infoHash.toString("hex");
    const peers = this.hashes.get(h);
    if (!peers) return [];
    const t = this.now();
    const out: NodeAddr[] = [];
    for (const [k, v] of [...peers].reverse()) {
      if (v.expires <= t) this.drop(peers, k);
      else if (out.length < max) out.push(v.peer);
    }
    if (peers.size === 0) this.hashes.delete(h);
    return out;
  }

  /** Drop expired entries (called periodically). */
  sweep(): void {
    const t = this.now();
    for (const [h, peers] of this.hashes) {
      for (const [k, v] of [...peers]) if (v.expires <= t) this.drop(peers, k);
      if (peers.size === 0) this.hashes.delete(h);
    }
  }

  get stats(): { infohashes: number; peers: number } {
    let peers = 0;
    for (const p of this.hashes.values()) peers += p.size;
    return { infohashes: this.hashes.size, peers };
  }
}
