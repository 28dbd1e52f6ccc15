/**
 * The DHT as the node's peer source (config `p2p.dht`). A torrent's discovery round runs every
 * `announceIntervalMs` (tens of seconds) for every source; a DHT announce is a whole get_peers walk plus K
 * announce_peer queries, and nodes keep an announce for ~30 minutes, so this wrapper announces each infohash
 * once, then again only every `reannounceMs`. Lookups walk the DHT at every round until one finds a peer, then at
 * most every `LOOKUP_AGAIN_MS` (peers found before are already known to the torrent; ones that come later announce
 * and dial us, or arrive by PEX). Nodes a peer names in a PORT message (BEP 5) are pinged and join the routing
 * table when they answer.
 */
import { isIPv6 } from "node:net";
import type { Config } from "../config.ts";
import { AmiError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import { Dht } from "./dht/dht.ts";
import type { PeerAddress, PeerDiscovery } from "./discovery.ts";

/** After a walk that found peers, the next walk for that infohash waits this long. */
export const LOOKUP_AGAIN_MS = 5 * 60_000;

export class DhtSource implements PeerDiscovery {
  readonly name = "dht";
  readonly dht: Dht;
  readonly reannounceMs: number;
  /** infohash hex → when we last announced it (or started to). */
  private readonly announcedAt = new Map<string, number>();
  private readonly pinged = new Map<string, number>();
  /** infohash hex → when a walk last found peers for it. */
  private readonly foundAt = new Map<string, number>();
  reannounces = 0;

  constructor(dht: Dht, reannounceMs: number) {
    this.dht = dht;
    this.reannounceMs = reannounceMs;
  }

  async announce(infohash: Buffer, port: number, signal?: AbortSignal): Promise<void> {
    if (this.dht.o.readOnly) return; // BEP 43: a read-only node is not in others' tables; it cannot be found
    const key = infohash.toString("hex");
    const last = this.announcedAt.get(key);
    if (last !== undefined && Date.now() - last < this.reannounceMs) return;
    this.announcedAt.set(key, Date.now());
    if (last !== undefined) this.reannounces++;
    try {
      await this.dht.announce(infohash, port, signal);
    } catch (e) {
      // Try again at the next round rather than after a whole period.
      this.announcedAt.delete(key);
      throw e;
    }
  }

  async *lookup(infohash: Buffer, signal?: AbortSignal): AsyncIterable<PeerAddress> {
    const key = infohash.toString("hex");
    if (Date.now() - (this.foundAt.get(key) ?? 0) < LOOKUP_AGAIN_MS) return;
    for await (const p of this.dht.lookup(infohash, signal)) {
      if (this.foundAt.size > 10_000) this.foundAt.clear();
      this.foundAt.set(key, Date.now());
      yield p;
    }
  }

  /** Forget a torrent we stopped (adding it again announces and looks up at once). */
  forget(infohash: Buffer): void {
    const key = infohash.toString("hex");
    this.announcedAt.delete(key);
    this.foundAt.delete(key);
  }

  /** A peer's PORT message: ping its DHT node (at most once a minute per address); an answer adds it to the table. */
  heardPort(peer: PeerAddress): void {
    const key = `${peer.host}:${peer.port}`;
    const now = Date.now();
    if ((this.pinged.get(key) ?? 0) > now - 60_000 || !this.dht.running) return;
    if (this.pinged.size > 4096) this.pinged.clear();
    this.pinged.set(key, now);
    const host = peer.host.startsWith("::ffff:") ? peer.host.slice(7) : peer.host;
    void this.dht.query({ host, port: peer.port }, "ping", {}).catch(() => {});
  }
}

/**
 * The DHT a `p2p` service runs: UDP on `p2p.dht.port` (null: the peer port), state (node id + routing table) in
 * `stateDir`, joined through `p2p.bootstrapNodes`. `bootstrap` (`p2p start --bootstrap`): the node is an entry
 * point for others, so it must answer (not read-only) on a port that does not change between restarts.
 */
export function dhtFor(config: Config, o: { stateDir: string; log: Logger; bootstrap: boolean }): DhtSource {
  const c = config.p2p;
  const port = c.dht.port ?? c.port;
  if (o.bootstrap && port === 0)
    throw new AmiError(
      "AMI_INVALID_CONFIG",
      "p2p start --bootstrap needs a fixed DHT port (p2p.dht.port, or p2p.port when it is null), not 0",
    );
  if (o.bootstrap && c.dht.readOnly)
    throw new AmiError(
      "AMI_INVALID_CONFIG",
      "p2p start --bootstrap: a bootstrap node answers others (p2p.dht.readOnly: false)",
    );
  const dht = new Dht({
    // The DHT is IPv4 (no BEP 32): an IPv6 peer listener address means "all interfaces" for it.
    host: isIPv6(c.host) ? "0.0.0.0" : c.host,
    port,
    bootstrap: c.bootstrapNodes,
    stateDir: o.stateDir,
    logger: o.log,
    readOnly: c.dht.readOnly,
  });
  return new DhtSource(dht, c.dht.reannounceMinutes * 60_000);
}
