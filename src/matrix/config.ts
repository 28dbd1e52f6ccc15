/** The `matrix` section: the homeserver (service `matrix`). */
import { z } from "zod";
import { hostSchema as host, portSchema as port } from "../core/config.ts";

const rate = z
  .object({
    perSecond: z.number().positive().default(10),
    burst: z.number().int().positive().default(50),
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
    /** Default room version for new rooms. */
    defaultRoomVersion: z.enum(["10", "11"]).default("10"),
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
      })
      .strict()
      .default({ maxUploadBytes: 50 * 1024 * 1024, storePath: null }),
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
        /** Open HTTP/WebSocket connections in all; more are answered 503 and closed. */
        maxConnections: z.number().int().positive().default(10000),
        /** Open connections from one client address (raise it behind a reverse proxy, which is one address). */
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
      })
      .strict()
      .default({ timeoutMs: 10000, retryInitialMs: 1000, retryMaxMs: 3600000, giveUpAfterMs: 86400000, queueMax: 100 }),
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
  })
  .strict();

export type MatrixConfig = z.output<typeof matrixSchema>;
