/** The `p2p` section: the BitTorrent node `p2p start` runs (service `p2p`). */
import { z } from "zod";

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[^:[\]\s]+):\d{1,5}$/, "must be host:port");

export const p2pSchema = z
  .object({
    /** Start the node with `up`. */
    enabled: z.boolean().default(false),
    /** Peer wire listener (TCP). */
    host: z.string().min(1).default("0.0.0.0"),
    port: z.number().int().min(0).max(65535).default(6881),
    /** The node's control API (health, stats, publish/fetch for the CLI and MCP), loopback only by default. */
    apiHost: z.string().min(1).default("127.0.0.1"),
    apiPort: z.number().int().min(0).max(65535).default(8095),
    /** Where .torrent files, state and partial downloads live; null: <home>/data/p2p. Completed pieces are CAS objects. */
    dataDir: z.string().nullable().default(null),
    /** Connections per torrent. */
    maxPeers: z.number().int().min(1).max(1000).default(50),
    /** Bytes per second over all torrents; 0: unlimited. */
    uploadLimit: z.number().int().min(0).default(0),
    downloadLimit: z.number().int().min(0).default(0),
    /** Peers every public torrent asks (host:port). */
    peers: z.array(hostPort).default([]),
    /** DHT bootstrap nodes (host:port): where the DHT joins the network; none by default (nothing public is contacted). */
    bootstrapNodes: z.array(hostPort).default([]),
    dht: z
      .object({
        /** The mainline DHT (BEP 5) as a peer source for public torrents (never private ones, BEP 27). */
        enabled: z.boolean().default(true),
        /** UDP port; null: the peer port (`port`), as transmission and qBittorrent do (one port to forward). */
        port: z.number().int().min(0).max(65535).nullable().default(null),
        /** BEP 43: query others but never answer them (behind a NAT that cannot be reached). */
        readOnly: z.boolean().default(false),
        /** How often each torrent is announced again (the DHT forgets announces after ~30 minutes). */
        reannounceMinutes: z.number().int().min(1).max(120).default(20),
      })
      .strict()
      .prefault({}),
    tracker: z
      .object({
        /** Serve a BitTorrent HTTP tracker (announce + scrape) that published torrents name. */
        enabled: z.boolean().default(true),
        host: z.string().min(1).default("127.0.0.1"),
        port: z.number().int().min(0).max(65535).default(6969),
        /** Host written in .torrent announce URLs; null: `host` (127.0.0.1 when it is a wildcard). */
        announceHost: z.string().nullable().default(null),
        /** Track any infohash; false: only what this node publishes or fetches. */
        open: z.boolean().default(false),
        intervalSeconds: z.number().int().min(1).default(60),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type P2pConfig = z.output<typeof p2pSchema>;
