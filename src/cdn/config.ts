/** The `cdn` section: the edge node `ami-streams serve cdn` runs (nodes from `cdn deploy` override a few keys). */
import { z } from "zod";

export const cdnSchema = z
  .object({
    /** Start the edge node with `up`. */
    enabled: z.boolean().default(false),
    host: z.string().min(1).default("127.0.0.1"),
    port: z.number().int().min(0).max(65535).default(8090),
    /** The region this node serves (a label in stats, `Via` and `cdn list`). */
    region: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "must be lowercase letters, digits and '-'")
      .default("local"),
    /** Where misses go last; null: this machine's media service. */
    origin: z.string().url().nullable().default(null),
    /** Parent caches (shields) tried before the origin, picked per object by consistent (rendezvous) hashing. */
    parents: z.array(z.string().url()).default([]),
    /** The memory tier's size; admission and eviction by W-TinyLFU. */
    memoryBytes: z
      .number()
      .int()
      .positive()
      .default(256 * 1024 * 1024),
    /**
     * The disk tier's size in bytes (0: none): stored objects are also kept in the content-addressed store (cas.root),
     * served from there once evicted from memory or after a restart; least recently used go first.
     */
    diskBytes: z.number().int().min(0).default(0),
    /**
     * Range slices (nginx `slice`; 0: off): a Range request for an object not held whole is served from slices of
     * this size, each fetched with its own Range request and cached on its own.
     */
    sliceBytes: z.number().int().min(0).default(0),
    /** Larger responses are streamed through, not stored. */
    maxObjectBytes: z
      .number()
      .int()
      .positive()
      .default(64 * 1024 * 1024),
    /** Query parameters dropped from the cache key (`name` or `prefix*`). */
    ignoreQuery: z.array(z.string().min(1)).default(["utm_*", "fbclid", "gclid"]),
    /** Null: every other parameter is kept; a list: only these (LL-HLS `_HLS_*` always are). */
    keepQuery: z.array(z.string().min(1)).nullable().default(null),
    /** How long a stale object may be served while the origin fails, when it does not say (`stale-if-error`). */
    staleIfErrorSeconds: z.number().int().min(0).default(300),
    /** Origin/parent: no response headers within this → the next parent, then stale-if-error, then 504. */
    upstreamTimeoutMs: z.number().int().positive().default(10000),
    /** How often parents are health-checked (`GET /health`); a failed parent is skipped until it passes. */
    healthCheckMs: z.number().int().positive().default(2000),
    /** Open client connections in total, and from one address (clients behind one NAT share it). */
    maxConnections: z.number().int().positive().default(10000),
    maxConnectionsPerAddress: z.number().int().positive().default(1000),
    /**
     * TLS termination: a second listener answering HTTPS on `port` (same host) with these PEM files, besides the
     * plain one (health checks, purges, shields). `http2` (default on): HTTP/2 by ALPN "h2", HTTP/1.1 for clients
     * that do not offer it. Null: plain HTTP only.
     */
    tls: z
      .object({
        port: z.number().int().min(0).max(65535),
        certFile: z.string().min(1),
        keyFile: z.string().min(1),
        http2: z.boolean().default(true),
      })
      .strict()
      .nullable()
      .default(null),
    /** Bearer token for `POST /_ami/purge` from other hosts; null: purges only from loopback. */
    purgeToken: z.string().min(16).nullable().default(null),
    /**
     * Signed URLs: the HMAC secret of this node's origin; null: no signatures asked. When set, requests under
     * `signedPaths` need `?expires=<unix s>&sig=<HMAC>` (make them with `cdn sign`); bad or expired: 403.
     */
    signingSecret: z.string().min(16).nullable().default(null),
    /** Path prefixes that need a signature when `signingSecret` is set (compared with the path as sent). */
    signedPaths: z.array(z.string().startsWith("/")).default(["/"]),
  })
  .strict();

export type CdnConfig = z.output<typeof cdnSchema>;
