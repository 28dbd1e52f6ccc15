/** The `matrix` section: the homeserver (service `matrix`). */
import { z } from "zod";
import { hostSchema as host, portSchema as port } from "../core/config.ts";
import { parseCidr } from "../core/http/client-address.ts";

const rate = z
  .object({
    perSecond: z.number().positive().default(10),
    burst: z.number().int().positive().default(50),
  })
  .strict();

const URL_PREVIEW_DEFAULTS = {
  enabled: false,
  ipRangeAllowlist: [],
  ipRangeBlacklist: [],
  maxBytes: 10 * 1024 * 1024,
  timeoutMs: 10_000,
};

/** A CIDR range or a single address, IPv4 or IPv6 (checked by node:net's BlockList when the previewer starts). */
const cidr = z
  .string()
  .regex(/^[0-9A-Fa-f:.]+(\/\d{1,3})?$/, "must be an IP address or a CIDR range such as 10.0.0.0/8 or fd00::/8");

/**
 * URL previews (GET /media/preview_url): the server fetches pages its users link to, so it could be made to reach
 * private networks. Loopback, private, link-local, CGNAT, multicast and reserved ranges are always refused (plus
 * ipRangeBlacklist) unless listed in ipRangeAllowlist; off by default, as in Synapse.
 */
const urlPreviewSchema = z
  .object({
    enabled: z.boolean().default(false),
    /** Ranges allowed even inside the denied ones (Synapse's url_preview_ip_range_whitelist). */
    ipRangeAllowlist: z.array(cidr).default([]),
    /** Ranges denied besides the built-in private and reserved ones. */
    ipRangeBlacklist: z.array(cidr).default([]),
    /** Bytes read of a page or an image at most (Synapse's max_spider_size). */
    maxBytes: z
      .number()
      .int()
      .positive()
      .default(10 * 1024 * 1024),
    /** A page (or its image) must arrive within this, redirects included. */
    timeoutMs: z.number().int().positive().default(10_000),
  })
  .strict();

/** A server name (host, IPv4, [IPv6], optional :port), as the spec's grammar. */
const serverName = z
  .string()
  .regex(/^[A-Za-z0-9.-]+(:\d+)?$|^\[[0-9A-Fa-f:.]+\](:\d+)?$/, "must be a hostname with an optional :port");

/** A server name glob as in m.room.server_acl: `*` any run of characters, `?` one. */
const serverGlob = z.string().regex(/^[A-Za-z0-9.:*?[\]-]+$/, "must be a server name glob such as *.example.org");

export const FEDERATION_DEFAULTS = {
  enabled: false,
  hostMap: {},
  wellKnownServer: null,
  allow: ["*"],
  deny: [],
  keyValidityMs: 86_400_000,
  oldVerifyKeys: {},
  trustedKeyServers: [],
  requestTimeoutMs: 30_000,
  maxResponseBytes: 10 * 1024 * 1024,
  maxConcurrentKeyFetches: 8,
  keyFetchBackoffMs: 60_000,
  ipRangeAllowlist: [],
  retryInitialMs: 5_000,
  retryMaxMs: 600_000,
  maxQueuedPdus: 1_000,
  maxQueuedToDevice: 1_000,
  maxToDeviceDestinations: 1_000,
  toDevicePerSenderPerMinute: 600,
  toDeviceExpiryMs: 7 * 86_400_000,
  partialStateJoins: true,
};

/**
 * Server-server API (src/matrix/federation/). Off: isolated mode, no federation routes served and no request sent.
 */
const federationSchema = z
  .object({
    enabled: z.boolean().default(false),
    /**
     * Server name -> `host:port` (HTTPS) or `http://host:port` (plain, tests only), used before any discovery
     * (Synapse's well-known/SRV overrides): how embedded test servers find each other on loopback.
     */
    hostMap: z
      .record(
        serverName,
        z
          .string()
          .regex(/^(https?:\/\/)?([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):\d+$/, "must be host:port or http(s)://host:port"),
      )
      .default({}),
    /** `GET /.well-known/matrix/server` answers `{"m.server": this}` (delegation, `host[:port]`); null: 404. */
    wellKnownServer: z
      .string()
      .regex(/^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:\d+)?$/, "must be host or host:port")
      .nullable()
      .default(null),
    /** Servers we talk to (globs as in server ACLs); a request from one not allowed is 403 M_FORBIDDEN. */
    allow: z.array(serverGlob).default(["*"]),
    /** Servers refused even when allowed. */
    deny: z.array(serverGlob).default([]),
    /** Our key response says valid_until_ts = now + this (Synapse's key_refresh_interval: 1 day). */
    keyValidityMs: z.number().int().min(60_000).default(86_400_000),
    /** Keys this server used before (Synapse's old_signing_keys): key id -> {key: public key, expired_ts}. */
    oldVerifyKeys: z
      .record(
        z.string().regex(/^ed25519:[A-Za-z0-9_]+$/, "must be a key id such as ed25519:a_AbCd"),
        z.object({ key: z.string().regex(/^[A-Za-z0-9+/]{43}$/), expired_ts: z.number().int().nonnegative() }).strict(),
      )
      .default({}),
    /**
     * Notaries asked for a server's keys when the server itself does not answer (Synapse's trusted_key_servers);
     * with verifyKeys, their answers must carry one of those signatures. None by default: nothing leaves the machine.
     */
    trustedKeyServers: z
      .array(z.object({ serverName, verifyKeys: z.record(z.string(), z.string()).default({}) }).strict())
      .default([]),
    /** A request to another server must be answered within this. */
    requestTimeoutMs: z.number().int().positive().default(30_000),
    /** Largest response body read from another server. */
    maxResponseBytes: z
      .number()
      .int()
      .positive()
      .default(10 * 1024 * 1024),
    /** Key fetches in flight at once (to all servers). */
    maxConcurrentKeyFetches: z.number().int().positive().default(8),
    /** After a failed key fetch from a server, ask it again only after this (no retry storms). */
    keyFetchBackoffMs: z.number().int().nonnegative().default(60_000),
    /**
     * A discovered destination (not from hostMap) is never connected to at a private, loopback, link-local or
     * reserved address (Synapse's federation_ip_range_blacklist), unless listed here.
     */
    ipRangeAllowlist: z.array(cidr).default([]),
    /**
     * Outgoing transactions (federation/sender.ts): after a failed one, the destination is retried after this,
     * doubling per failure (with jitter) up to retryMaxMs — a dead server is tried at most that often, and a
     * request from it (it is back) wakes its queue at once.
     */
    retryInitialMs: z.number().int().positive().default(5_000),
    retryMaxMs: z.number().int().positive().default(600_000),
    /**
     * PDUs held in memory per destination while it is unreachable; past it the oldest go, and the destination is
     * caught up from the timeline once it answers (they stay owed in the store).
     */
    maxQueuedPdus: z.number().int().positive().default(1_000),
    /** To-device EDUs held per destination while it is unreachable; past it the oldest go (counted in the metrics). */
    maxQueuedToDevice: z.number().int().positive().default(1_000),
    /**
     * Destinations holding queued to-device EDUs at once: a local user's to-device message for yet another server
     * past it is refused (429 M_LIMIT_EXCEEDED), so made-up servers cannot grow the outbox without bound. With
     * workers, counted for the whole cluster (the outbox in the store).
     */
    maxToDeviceDestinations: z.number().int().positive().default(1_000),
    /**
     * To-device EDUs for other servers one local user may queue per minute (past it: 429 M_LIMIT_EXCEEDED). With
     * workers, counted for the whole cluster (in Redis; per worker only while Redis does not answer).
     */
    toDevicePerSenderPerMinute: z.number().int().positive().default(600),
    /**
     * A to-device EDU queued this long ago for a destination that has failed ever since is dropped (from memory and
     * the durable outbox; Synapse-like 7 days).
     */
    toDeviceExpiryMs: z
      .number()
      .int()
      .positive()
      .default(7 * 86_400_000),
    /**
     * Join remote rooms with members omitted (send_join `omit_members=true`, MSC3706 "faster joins"): the join
     * returns once the room's non-member state is in, and the members are fetched in the background
     * (federation/partial-state.ts); meanwhile `/members` waits for them and a /sync shows only the members known
     * so far (the rest follow as state once fetched). Off: the whole state is received before the join returns.
     */
    partialStateJoins: z.boolean().default(true),
  })
  .strict();

export const matrixSchema = z
  .object({
    enabled: z.boolean().default(true),
    /** The `server_name`: the domain part of user IDs and room aliases. */
    serverName: z
      .string()
      .regex(/^[A-Za-z0-9.-]+(:\d+)?$|^\[[0-9A-Fa-f:.]+\](:\d+)?$/, "must be a hostname with an optional :port")
      .default("localhost"),
    host: host.default("127.0.0.1"),
    port: port.default(8008),
    /** URL clients use to reach the homeserver (well-known, login hints). Default: http://<host>:<port>. */
    publicBaseUrl: z.string().url().nullable().default(null),
    /** `sqlite` (file in the data dir), `sqlite:/path/to/file.db`, or a `postgres://` URL. */
    database: z
      .string()
      .regex(/^(sqlite(:.+)?|postgres(ql)?:\/\/.+)$/, "must be 'sqlite', 'sqlite:<path>' or a postgres:// URL")
      .default("sqlite"),
    /**
     * Homeserver processes sharing the port (SO_REUSEPORT) and the PostgreSQL database (docs/ARCHITECTURE.md
     * "Homeserver scale-out"). More than 1 needs a postgres:// database and Redis at `redis`.
     */
    workers: z.number().int().min(1).max(64).default(1),
    /**
     * Redis between the workers (only with workers > 1): positions, typing, cache invalidations and revocations,
     * shared rate-limit buckets, the federation sender's lease.
     */
    redis: z
      .string()
      .regex(/^rediss?:\/\/.+/, "must be a redis:// or rediss:// URL")
      .default("redis://127.0.0.1:6379"),
    /**
     * Reverse proxies (addresses or CIDR ranges) whose X-Forwarded-For names the client: rate limits, last-seen IPs
     * and logs see the address the nearest untrusted hop gives. Empty (the default): the header is ignored, so a
     * client talking to us directly cannot claim another address.
     */
    trustedProxies: z
      .array(cidr.refine((s) => parseCidr(s) !== null, "must be an IP address or a CIDR range"))
      .max(256)
      .default([]),
    /** Default room version for new rooms. */
    defaultRoomVersion: z.enum(["10", "11", "12"]).default("10"),
    registration: z
      .object({
        /** Open registration through /register (m.login.dummy). Off by default, as in Synapse. */
        enabled: z.boolean().default(false),
        /** With registration enabled: require an m.login.registration_token stage. */
        requireToken: z.boolean().default(false),
        /** Secret for `/_synapse/admin/v1/register`; generated into the data dir when null. */
        sharedSecret: z.string().min(16).nullable().default(null),
      })
      .strict()
      .default({ enabled: false, requireToken: false, sharedSecret: null }),
    /**
     * Sessions. A client that asks for a refresh token at /login or /register gets an access token expiring after
     * accessTokenLifetimeMs (Synapse's refreshable_access_token_lifetime, 5 min); others never expire.
     * loginTokenEnabled: POST /login/get_token hands a logged-in user a 2-minute single-use m.login.token
     * (Synapse's login_via_existing_session.enabled, off by default).
     */
    auth: z
      .object({
        accessTokenLifetimeMs: z.number().int().min(1000).default(300000),
        loginTokenEnabled: z.boolean().default(false),
      })
      .strict()
      .default({ accessTokenLifetimeMs: 300000, loginTokenEnabled: false }),
    media: z
      .object({
        /** Largest upload in bytes. */
        maxUploadBytes: z
          .number()
          .int()
          .positive()
          .default(50 * 1024 * 1024),
        /** Media files from before the content-addressed store (still served; uploads go to cas); default: <home>/data/matrix/media. */
        storePath: z.string().nullable().default(null),
        /** Images with more pixels are not thumbnailed (413 M_TOO_LARGE): decompression bombs (Synapse: 32M). */
        maxImagePixels: z.number().int().positive().default(32_000_000),
        /** A media ID from POST /_matrix/media/v1/create must be uploaded to within this (spec: 24 h). */
        unusedExpirationMs: z.number().int().positive().default(86_400_000),
        /** Created, not yet uploaded media IDs a user may have at once (Synapse's max_pending_media_uploads). */
        maxPendingUploads: z.number().int().positive().default(5),
        /** Bytes one user may upload in 24 hours (403 M_FORBIDDEN past it, as the spec's quota); null: no quota. */
        maxUploadBytesPerUserPerDay: z.number().int().positive().nullable().default(null),
        urlPreview: urlPreviewSchema.default(URL_PREVIEW_DEFAULTS),
      })
      .strict()
      .default({
        maxUploadBytes: 50 * 1024 * 1024,
        storePath: null,
        maxImagePixels: 32_000_000,
        unusedExpirationMs: 86_400_000,
        maxPendingUploads: 5,
        maxUploadBytesPerUserPerDay: null,
        urlPreview: URL_PREVIEW_DEFAULTS,
      }),
    limits: z
      .object({
        /** Largest JSON request body in bytes. */
        maxJsonBodyBytes: z
          .number()
          .int()
          .positive()
          .default(1024 * 1024),
        /** Per-user request rate for rate-limited endpoints (send, join, register, login...). */
        perUser: rate.default({ perSecond: 10, burst: 50 }),
        /** Per-IP request rate for unauthenticated rate-limited endpoints. */
        perIp: rate.default({ perSecond: 10, burst: 50 }),
        /** Server admins are not rate limited. */
        exemptAdmins: z.boolean().default(true),
        /**
         * Open HTTP/WebSocket connections in all, per worker process (it guards each process's sockets and memory:
         * with `workers: N` the server holds up to N times this); more are answered 503 and closed.
         */
        maxConnections: z.number().int().positive().default(10000),
        /**
         * Open connections from one client address, per worker process like maxConnections (the kernel spreads an
         * address's connections over the workers: up to N times this in all). Raise it behind a reverse proxy,
         * which is one address.
         */
        maxConnectionsPerAddress: z.number().int().positive().default(1000),
        /** The whole request, an upload's body included, must arrive within this (a slow phone sends 50 MiB in minutes). */
        requestTimeoutMs: z.number().int().positive().default(600000),
      })
      .strict()
      .default({
        maxJsonBodyBytes: 1024 * 1024,
        perUser: { perSecond: 10, burst: 50 },
        perIp: { perSecond: 10, burst: 50 },
        exemptAdmins: true,
        maxConnections: 10000,
        maxConnectionsPerAddress: 1000,
        requestTimeoutMs: 600000,
      }),
    sync: z
      .object({
        /** Upper bound on the long-poll `timeout` a client may ask for. */
        maxTimeoutMs: z.number().int().positive().default(30000),
      })
      .strict()
      .default({ maxTimeoutMs: 30000 }),
    /**
     * VoIP (`GET /voip/turnServer`), Synapse's turn_* settings: TURN URIs and the shared secret of their REST
     * scheme. turnUris [] with turn.enabled: our coturn's URIs and secret. None at all: the route answers `{}`.
     */
    voip: z
      .object({
        turnUris: z.array(z.string().regex(/^turns?:/, "must be a turn: or turns: URI")).default([]),
        turnSharedSecret: z.string().min(16).nullable().default(null),
        turnUserLifetimeSeconds: z.number().int().positive().default(86400),
      })
      .strict()
      .default({ turnUris: [], turnSharedSecret: null, turnUserLifetimeSeconds: 86400 }),
    presence: z
      .object({
        enabled: z.boolean().default(true),
        /**
         * GET /presence/{userId}/status answers for anyone; off, only for users sharing a joined room (and
         * oneself). /sync always carries only the presence of users sharing a room.
         */
        visibleToAll: z.boolean().default(false),
      })
      .strict()
      .default({ enabled: true, visibleToAll: false }),
    /**
     * Push to HTTP pushers (Push Gateway API). Each pusher has its own queue of at most queueMax notifications (the
     * oldest dropped past it); a failed POST is retried after retryInitialMs, doubling up to retryMaxMs, and given
     * up giveUpAfterMs after its first try (Synapse: one day). A POST waits at most timeoutMs.
     */
    push: z
      .object({
        timeoutMs: z.number().int().positive().default(10000),
        retryInitialMs: z.number().int().positive().default(1000),
        retryMaxMs: z.number().int().positive().default(3600000),
        giveUpAfterMs: z.number().int().positive().default(86400000),
        queueMax: z.number().int().positive().default(100),
        /** Notifications (GET /notifications) older than this are deleted, hourly (Synapse keeps 30 days). */
        notificationRetentionDays: z.number().positive().default(30),
      })
      .strict()
      .default({
        timeoutMs: 10000,
        retryInitialMs: 1000,
        retryMaxMs: 3600000,
        giveUpAfterMs: 86400000,
        queueMax: 100,
        notificationRetentionDays: 30,
      }),
    userDirectory: z
      .object({
        /**
         * POST /user_directory/search finds every local user; off, only users sharing a joined room with the
         * searcher or joined to a public room (Synapse's user_directory.search_all_users).
         */
        searchAllUsers: z.boolean().default(false),
      })
      .strict()
      .default({ searchAllUsers: false }),
    /**
     * `GET /.well-known/matrix/support` (spec "Support discovery"): how to reach the server's administrators
     * (`contacts`: a Matrix ID and/or an email address with a role) and a help page. Neither set: the route is 404.
     */
    support: z
      .object({
        contacts: z
          .array(
            z
              .object({
                matrix_id: z
                  .string()
                  .regex(/^@[^:]+:.+$/, "must be a Matrix user ID")
                  .optional(),
                email_address: z.string().email().optional(),
                role: z
                  .string()
                  .regex(
                    /^(m\.role\.admin|m\.role\.security|[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+)$/,
                    "must be m.role.admin, m.role.security or a namespaced identifier",
                  ),
              })
              .strict()
              .refine((c) => c.matrix_id || c.email_address, "needs a matrix_id or an email_address"),
          )
          .default([]),
        page: z.string().url().nullable().default(null),
      })
      .strict()
      .default({ contacts: [], page: null }),
    admin: z
      .object({
        /**
         * POST /_synapse/admin/v1/users/{userId}/login: a server admin may get an access token of another user
         * (Synapse's "login as a user"). Off by default: it lets an admin act as anyone, unseen.
         */
        allowLoginAsUser: z.boolean().default(false),
      })
      .strict()
      .default({ allowLoginAsUser: false }),
    federation: federationSchema.default(FEDERATION_DEFAULTS),
  })
  .strict()
  .refine((m) => m.workers === 1 || /^postgres(ql)?:\/\//.test(m.database), {
    message: "needs a postgres:// database above 1 (SQLite is one process's file)",
    path: ["workers"],
  });

export type MatrixConfig = z.output<typeof matrixSchema>;
