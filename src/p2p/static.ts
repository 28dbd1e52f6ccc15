/** Peers named up front (config `p2p.peers`, `--peers`, a magnet's `x.pe`) as a discovery source. */
import type { PeerAddress, PeerDiscovery } from "./discovery.ts";

export class StaticDiscovery implements PeerDiscovery {
  readonly name = "static";
  readonly peers: PeerAddress[];
  constructor(peers: PeerAddress[]) {
    this.peers = peers;
  }

  async *lookup(): AsyncIterable<PeerAddress> {
    yield* this.peers;
  }

  async announce(): Promise<void> {}
}
