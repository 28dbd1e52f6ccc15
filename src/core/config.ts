/**
 * The one config schema: every key, its type and its default live here. `config/ami-streams.example.yaml`
 * is tested to equal these defaults. Precedence: --config FILE > $AMI_STREAMS_CONFIG > <home>/config.yaml > defaults.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { z } from "zod";
import { AmiError } from "./errors.ts";
import { defaultHome } from "./paths.ts";
import { programNameSchema, programSchema } from "./program.ts";

const port = z.number().int().min(0).max(65535);
const host = z.string().min(1);

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
  })
  .strict();

/** The supervisor and its control API (`ami-streams up/down/status`, `POST /api/ops/<op>`). */
export const controlSchema = z
  .object({
    host: host.default("127.0.0.1"),
    /** Control API port (0: any free port; clients find it in <home>/run/control.json). */
    port: port.default(8470),
    /** Bearer token for the control API; generated into <home>/run/control.token when null. */
    token: z.string().min(16).nullable().default(null),
    /** How often the supervisor calls each service's GET /health. */
    healthIntervalMs: z.number().int().positive().default(1000),
    /** A service that is not healthy this long after starting is killed and restarted. */
    startTimeoutMs: z.number().int().positive().default(60000),
    /** Grace period between SIGTERM and SIGKILL when stopping a service. */
    stopGraceMs: z.number().int().positive().default(10000),
    /**
     * Restart delay after a crash: initialMs, doubling up to maxMs; back to initialMs once the service has been
     * healthy for resetAfterMs (0: at its first good health check). A small cap and a quick reset keep a service
     * that a bad request can crash up nearly all the time, instead of down for ever-longer waits.
     */
    backoff: z
      .object({
        initialMs: z.number().int().positive().default(500),
        maxMs: z.number().int().positive().default(5000),
        resetAfterMs: z.number().int().nonnegative().default(0),
      })
      .strict()
      .default({ initialMs: 500, maxMs: 5000, resetAfterMs: 0 }),
  })
  .strict();

/** The `web` service: the embedded chat client for people (web/chat, built with Vite). */
export const webSchema = z
  .object({
    enabled: z.boolean().default(true),
    host: host.default("127.0.0.1"),
    port: port.default(8080),
  })
  .strict();

/** WHIP ingest and WHEP playback (WebRTC) on the media HTTP port. */
export const webrtcSchema = z
  .object({
    enabled: z.boolean().default(true),
    /** Addresses offered as ICE host candidates ([]: every interface). Loopback only by default. */
    hostAddresses: z.array(z.string().min(1)).default(["127.0.0.1"]),
    /** UDP port range for ICE (both null: any free port). werift needs udpPortMax > udpPortMin. */
    udpPortMin: port.nullable().default(null),
    udpPortMax: port.nullable().default(null),
    /** STUN/TURN servers; none by default (nothing here reaches the internet). */
    iceServers: z
      .array(
        z
          .object({
            urls: z.union([z.string(), z.array(z.string())]),
            username: z.string().optional(),
            credential: z.string().optional(),
          })
          .strict(),
      )
      .default([]),
  })
  .strict()
  .superRefine((w, ctx) => {
    if ((w.udpPortMin === null) !== (w.udpPortMax === null)) {
      ctx.addIssue({ code: "custom", path: ["udpPortMax"], message: "udpPortMin and udpPortMax go together" });
    } else if (w.udpPortMin !== null && w.udpPortMax !== null && w.udpPortMax <= w.udpPortMin) {
      ctx.addIssue({ code: "custom", path: ["udpPortMax"], message: "must be greater than udpPortMin" });
    }
  });

/**
 * RTMPS (RTMP over TLS) ingest and playback on its own port, as MediaMTX's rtmpEncryption/rtmpsAddress. Off by
 * default; enabled with no cert/key, a self-signed pair is generated once under <home>/data/media/tls.
 */
export const rtmpsSchema = z
  .object({
    enabled: z.boolean().default(false),
    port: port.default(1936),
    /** PEM certificate (chain) file; null with key null: the generated self-signed one. */
    cert: z.string().min(1).nullable().default(null),
    /** PEM private key file for cert. */
    key: z.string().min(1).nullable().default(null),
  })
  .strict()
  .superRefine((r, ctx) => {
    if ((r.cert === null) !== (r.key === null))
      ctx.addIssue({ code: "custom", path: ["key"], message: "cert and key go together" });
  });

/**
 * What one RTMP/RTMPS connection may cost before and after it is admitted, so unauthenticated peers cannot take
 * the process's memory or sockets. Until `connect` + `publish`/`play` succeed a connection may hold 64 KiB of
 * partial messages; an admitted publisher may hold connectionBufferBytes (a 4K x264 keyframe at 50 Mb/s measured
 * 2.2 MiB); all connections together hold at most totalBufferBytes. Over a limit, the connection is closed.
 */
export const rtmpLimitsSchema = z
  .object({
    /** Connections at once, per listener (RTMP and RTMPS each). */
    maxConnections: z.number().int().positive().default(1000),
    /** Connections at once from one client address, per listener. */
    maxConnectionsPerAddress: z.number().int().positive().default(32),
    /** From accept to an admitted publish or play (handshake, connect, publish/play, auth). */
    handshakeTimeoutSeconds: z.number().positive().default(10),
    /** A connection that is not playing and sends nothing for this long is closed (players may idle). */
    idleTimeoutSeconds: z.number().positive().default(30),
    /** Largest message a publisher may send (a keyframe); RTMP itself allows 16 MiB. */
    maxMessageBytes: z
      .number()
      .int()
      .min(64 * 1024)
      .max(0xffffff)
      .default(8 * 1024 * 1024),
    /** Bytes of partial messages one admitted publisher may hold. */
    connectionBufferBytes: z
      .number()
      .int()
      .min(64 * 1024)
      .default(12 * 1024 * 1024),
    /** Bytes of partial messages all RTMP and RTMPS connections may hold together. */
    totalBufferBytes: z
      .number()
      .int()
      .min(1024 * 1024)
      .default(256 * 1024 * 1024),
  })
  .strict();

const bitrate = z.string().regex(/^\d+(?:\.\d+)?[kM]?$/, 'must be a bitrate like "2500k", "2.5M" or "800000"');

/** One rung of an ABR ladder: the path's video encoded to this height (and bitrate) by ffmpeg. */
export const abrRungSchema = z
  .object({
    /** The rendition is published as path <path>/<name> (one path segment, e.g. 720p). */
    name: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,32}$/, "must be one path segment of letters, digits, _ or - (e.g. 720p)")
      .refine((n) => n !== "whip" && n !== "whep", "whip and whep are WebRTC endpoints, not rendition names"),
    /** Output height in pixels (width follows the source's aspect ratio); rungs above the source are skipped. */
    height: z
      .number()
      .int()
      .min(32)
      .max(4320)
      .refine((h) => h % 2 === 0, "must be even (H.264 4:2:0 needs even dimensions)"),
    videoBitrate: bitrate,
    /** Re-encode the audio to AAC at this bitrate; unset: the source's AAC is copied. */
    audioBitrate: bitrate.optional(),
    /** Output frame rate; unset: the source's. */
    fps: z.number().positive().max(240).optional(),
    /** x264 preset (software encoding only; hardware encoders use their low-latency settings). */
    preset: z
      .enum(["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"])
      .optional(),
  })
  .strict();

export const abrLadderSchema = z
  .array(abrRungSchema)
  .max(8)
  .superRefine((rungs, ctx) => {
    const seen = new Set<string>();
    for (const [i, r] of rungs.entries()) {
      if (seen.has(r.name)) ctx.addIssue({ code: "custom", path: [i, "name"], message: `'${r.name}' is used twice` });
      seen.add(r.name);
    }
  });

/** Live media (service `media`): RTMP/RTMPS/SRT/WHIP ingest and pulls; HLS, LL-HLS, DASH, WHEP, RTMP out. */
export const mediaSchema = z
  .object({
    enabled: z.boolean().default(true),
    host: host.default("127.0.0.1"),
    /** RTMP ingest and playback: rtmp://<host>:<rtmpPort>/<app>/<key> is stream path <app>/<key>. */
    rtmpPort: port.default(1935),
    /** HLS (/<path>/index.m3u8), LL-HLS, DASH (/<path>/index.mpd), /api/streams, /health, /metrics. */
    httpPort: port.default(8888),
    /** Target segment duration; segments start on keyframes, so the GOP should divide it. */
    hlsSegmentSeconds: z.number().positive().max(30).default(1),
    /** LL-HLS part duration (one CMAF fragment); must be below hlsSegmentSeconds. */
    hlsPartSeconds: z.number().min(0.05).max(5).default(0.2),
    /** Segments listed in playlists and the DASH timeline. */
    hlsSegmentCount: z.number().int().min(3).max(100).default(7),
    /** Frames a reader may have queued before it loses frames (counted as frames discarded). */
    readerQueueFrames: z.number().int().min(16).default(1024),
    /** ffmpeg binary (pulls, SRT, restreams, transcoding; HLS/DASH packaging and recording are in-process). */
    ffmpegPath: z.string().min(1).default("ffmpeg"),
    /** How long a finished stream's playlists stay readable (with ENDLIST) after its publisher leaves. */
    lingerSeconds: z.number().min(0).default(60),
    /** SRT ingest (UDP): a caller with streamid `publish:<path>` publishes MPEG-TS (H.264 + AAC) to <path>. */
    srtPort: port.default(8890),
    /** Connection caps, timeouts and memory budgets of the RTMP and RTMPS listeners. */
    rtmp: rtmpLimitsSchema.default(() => rtmpLimitsSchema.parse({})),
    /** RTMPS ingest and playback (rtmps://<host>:<rtmps.port>/<app>/<key>), off by default. */
    rtmps: rtmpsSchema.default(() => rtmpsSchema.parse({})),
    /**
     * A publisher that leaves and comes back within this many seconds continues the same playlist (HLS:
     * EXT-X-DISCONTINUITY, DASH: a new Period) and players never see the end; after it, EXT-X-ENDLIST.
     */
    endGraceSeconds: z.number().min(0).default(5),
    /** Pull sources and restream destinations reconnect after retryInitialMs, doubling up to retryMaxMs. */
    retryInitialMs: z.number().int().positive().default(1000),
    retryMaxMs: z.number().int().positive().default(30000),
    /** A pull or SRT source that sends nothing for this long is dropped (and a pull reconnects). */
    sourceStallSeconds: z.number().positive().default(15),
    /** Where recordings go (<recordPath>/<stream path>/*.mp4); null: <home>/data/media/recordings. */
    recordPath: z.string().nullable().default(null),
    /** Length of each recorded file (cut at the next keyframe). */
    recordSegmentSeconds: z.number().positive().default(60),
    /** Recorded files older than this are deleted (0: keep forever). */
    recordMaxAgeHours: z.number().min(0).default(168),
    /** Per path, the oldest recorded files are deleted beyond this many bytes (0: no limit). */
    recordMaxBytes: z
      .number()
      .int()
      .min(0)
      .default(10 * 1024 * 1024 * 1024),
    webrtc: webrtcSchema.default(() => webrtcSchema.parse({})),
    /**
     * Per-path permissions, by glob (`*` within a segment, `**` across; an exact name wins, then the pattern with
     * the most literal characters). publish: key (a stream key from `stream key create`), any, none; read: any,
     * signed (`stream sign` URLs), none. Paths no pattern matches: publish key, read any.
     */
    paths: z
      .record(
        z.string().min(1),
        z
          .object({
            publish: z.enum(["key", "any", "none"]).default("key"),
            read: z.enum(["any", "signed", "none"]).default("any"),
            /**
             * ABR ladder: while the path has a publisher, one ffmpeg encodes each rung and publishes it as
             * <path>/<name> (HLS, DASH, WHEP, RTMP, recording all work per rendition); /<path>/master.m3u8
             * lists the source and the renditions. Default: none (remux only, no transcoding).
             */
            abr: abrLadderSchema.default([]),
          })
          .strict(),
      )
      .default({}),
    /**
     * Video encoder for ABR ladders: auto picks the first usable of nvenc, vaapi, qsv (a test encode on the
     * device), else software (libx264). A forced hardware kind that is not usable fails the ladder, not the path.
     */
    encoder: z.enum(["auto", "software", "nvenc", "vaapi", "qsv"]).default("auto"),
    /** Publishers on this machine (127.0.0.0/8, ::1) need no key on `publish: key` paths; a key they give is still checked. */
    trustLoopbackPublishers: z.boolean().default(true),
    /** POST {action, path, protocol, ip, key} here for every publish and read; 2xx allows, anything else denies. */
    authHook: z.string().url().nullable().default(null),
    /** The auth hook's time limit; no answer in time denies. */
    authHookTimeoutMs: z.number().int().positive().default(3000),
  })
  .strict()
  .superRefine((m, ctx) => {
    if (m.hlsPartSeconds >= m.hlsSegmentSeconds) {
      ctx.addIssue({ code: "custom", path: ["hlsPartSeconds"], message: "must be less than hlsSegmentSeconds" });
    }
    if (m.retryMaxMs < m.retryInitialMs) {
      ctx.addIssue({ code: "custom", path: ["retryMaxMs"], message: "must be at least retryInitialMs" });
    }
  });

/**
 * The content-addressed store (`ami-streams cas ...`; later Matrix media, recordings, CDN caches, P2P pieces).
 * Chunk sizes steer FastCDC: changing them later still works but new content stops deduplicating against old.
 */
export const casSchema = z
  .object({
    /** Where the store lives; null: <home>/data/cas. */
    root: z.string().min(1).nullable().default(null),
    chunkMinBytes: z
      .number()
      .int()
      .min(64)
      .default(16 * 1024),
    /** Target average chunk size; a power of two (FastCDC's masks are bit counts). */
    chunkAvgBytes: z
      .number()
      .int()
      .refine((n) => n > 0 && (n & (n - 1)) === 0, "must be a power of two")
      .default(64 * 1024),
    chunkMaxBytes: z
      .number()
      .int()
      .max(64 * 1024 * 1024)
      .default(256 * 1024),
    /** fsync chunks, manifests and directories before a put returns (off: a power cut may lose recent puts). */
    fsync: z.boolean().default(true),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.chunkAvgBytes <= c.chunkMinBytes)
      ctx.addIssue({ code: "custom", path: ["chunkAvgBytes"], message: "must be greater than chunkMinBytes" });
    if (c.chunkMaxBytes <= c.chunkAvgBytes)
      ctx.addIssue({ code: "custom", path: ["chunkMaxBytes"], message: "must be greater than chunkAvgBytes" });
  });

export const configSchema = z
  .object({
    /** Runtime directory (pid, state, logs, data). $AMI_STREAMS_HOME wins over this. */
    home: z.string().nullable().default(null),
    log: z
      .object({ level: z.enum(["debug", "info", "warn", "error"]).default("info") })
      .strict()
      .default({ level: "info" }),
    control: controlSchema.default(() => controlSchema.parse({})),
    matrix: matrixSchema.default(() => matrixSchema.parse({})),
    media: mediaSchema.default(() => mediaSchema.parse({})),
    web: webSchema.default(() => webSchema.parse({})),
    /**
     * Your own programs, supervised like ours (started by `up`, restarted, stopped by `down`, shown in `status`
     * and `monitor`, `ami-streams <name> start|stop|status|restart`), keyed by name. Example:
     * `turn: { argv: [turnserver, -c, turn.conf], health: { tcp: "127.0.0.1:3478" } }`.
     */
    programs: z.record(programNameSchema, programSchema).default({}),
    cas: casSchema.default(() => casSchema.parse({})),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
export type MatrixConfig = Config["matrix"];
export type MediaConfig = Config["media"];
export type WebConfig = Config["web"];
export type CasConfig = Config["cas"];

export interface ConfigIssue {
  /** Dotted key path, e.g. `matrix.limits.perUser.burst`. */
  key: string;
  message: string;
}

/** Validate a parsed YAML/JSON value. Returns every issue with its key path. */
export function validateConfig(raw: unknown): { config?: Config; issues: ConfigIssue[] } {
  const r = configSchema.safeParse(raw ?? {});
  if (r.success) return { config: r.data, issues: [] };
  const issues = r.error.issues.map((i) => {
    const key = i.path.join(".") || "(root)";
    let message = i.message;
    if (i.code === "unrecognized_keys") {
      return { key: [...i.path, ...i.keys].join("."), message: "unknown key" };
    }
    // A bad record key (a program's name): say what is wrong with it, not only that it is.
    if (i.code === "invalid_key") message = i.issues[0]?.message ?? message;
    message = `'${key}' ${message.charAt(0).toLowerCase()}${message.slice(1)}`;
    return { key, message };
  });
  return { issues };
}

export const defaultConfig = (): Config => configSchema.parse({});

/** Which config file is in effect (undefined: none, defaults apply). */
export function resolveConfigPath(explicit?: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (explicit) return explicit;
  if (env.AMI_STREAMS_CONFIG) return env.AMI_STREAMS_CONFIG;
  const p = join(defaultHome(env), "config.yaml");
  return existsSync(p) ? p : undefined;
}

export function parseConfigText(text: string, source = "config"): unknown {
  try {
    return YAML.parse(text) ?? {};
  } catch (e) {
    throw new AmiError("AMI_INVALID_CONFIG", `${source}: not valid YAML: ${(e as Error).message}`);
  }
}

/** Load and validate; throws AMI_INVALID_CONFIG listing every issue. */
export function loadConfig(
  explicit?: string,
  env: NodeJS.ProcessEnv = process.env,
): { config: Config; path: string | undefined } {
  const path = resolveConfigPath(explicit, env);
  let raw: unknown = {};
  if (path) {
    if (!existsSync(path)) throw new AmiError("AMI_INVALID_CONFIG", `config file not found: ${path}`);
    raw = parseConfigText(readFileSync(path, "utf8"), path);
  }
  const { config, issues } = validateConfig(raw);
  if (!config) {
    throw new AmiError(
      "AMI_INVALID_CONFIG",
      `${path}: ${issues.length} error(s):\n${issues.map((i) => `  ${i.message}`).join("\n")}`,
      { issues },
    );
  }
  return { config, path };
}

/** The runtime home for a config: $AMI_STREAMS_HOME, else config.home, else ~/.ami-streams. */
export function homeFor(config: Config, env: NodeJS.ProcessEnv = process.env): string {
  if (env.AMI_STREAMS_HOME) return defaultHome(env);
  return config.home ?? defaultHome(env);
}
