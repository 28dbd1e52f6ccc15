/**
 * How the swarm finds peers for a torrent, whatever the source: the mainline DHT (BEP 5), HTTP trackers
 * (BEP 3 / BEP 23), peers named on the command line or in a magnet (`x.pe`), peer exchange (BEP 11). The swarm
 * asks every source it has and dedupes; a private torrent (BEP 27) asks only its trackers.
 */
export interface PeerAddress {
  host: string;
  port: number;
}

export interface PeerDiscovery {
  /** A short name for logs and the monitor ("dht", "tracker", "static"). */
  readonly name: string;
  /** Peers for a 20-byte infohash (v1, or a v2 infohash truncated to 20 bytes as BEP 52 says), yielded as found. */
  lookup(infohash: Buffer, signal?: AbortSignal): AsyncIterable<PeerAddress>;
  /** Tell the source that we serve `infohash` on `port` (TCP). */
  announce(infohash: Buffer, port: number, signal?: AbortSignal): Promise<void>;
}
