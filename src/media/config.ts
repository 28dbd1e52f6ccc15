/** The `media` section: live media (service `media`). */
import { z } from "zod";
import { hostSchema as host, portSchema as port } from "../core/config.ts";

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

const iceServerSchema = z
  .object({
    urls: z.union([z.string(), z.array(z.string())]),
    username: z.string().optional(),
    credential: z.string().optional(),
  })
  .strict();

/**
 * The viewer mesh (p2p-media-loader's idea): player pages fetch HLS segments from other viewers of the same stream
 * over WebRTC data channels, signalled through `/_ami/mesh` on the media HTTP port, check each against the SHA-256
 * the server publishes in `/<path>/mesh.json`, and fall back to HTTP. Off by default: it spends viewers' upload,
 * shows viewers' addresses to each other, and without ICE servers only viewers on one network can connect.
 */
export const meshSchema = z
  .object({
    enabled: z.boolean().default(false),
    /** Peers one viewer is linked to at once (each a WebRTC connection in its browser). */
    maxPeers: z.number().int().min(1).max(16).default(4),
    /** Viewers in one stream's swarm; more are refused (they play over HTTP). */
    maxViewersPerStream: z.number().int().min(2).default(500),
    /** Largest signalling message (an SDP with its candidates is 1-3 KiB). */
    maxMessageBytes: z
      .number()
      .int()
      .min(1024)
      .max(64 * 1024)
      .default(16 * 1024),
    /** Signalling messages per second one viewer may send (bursts of twice that); over it, its socket is closed. */
    messagesPerSecond: z.number().int().min(1).max(1000).default(20),
    /** How long a player waits for a peer to have (or finish loading) a segment before it asks the server. */
    peerWaitMs: z.number().int().min(0).max(10_000).default(1000),
    /** STUN/TURN servers handed to the players (e.g. our TURN service); none: host candidates only. */
    iceServers: z.array(iceServerSchema).default([]),
  })
  .strict();

/**
 * A TLS listener on its own port (RTMPS, RTSPS). Off by default; enabled with no cert/key, a self-signed pair is
 * generated once under <home>/data/media/tls.
 */
const tlsListenerSchema = (defaultPort: number) =>
  z
    .object({
      enabled: z.boolean().default(false),
      port: port.default(defaultPort),
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

/** RTMPS (RTMP over TLS) ingest and playback, as MediaMTX's rtmpEncryption/rtmpsAddress. */
export const rtmpsSchema = tlsListenerSchema(1936);

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

/**
 * SRT (in-process, live mode): latency negotiated with callers (the larger of both is used), encryption, and
 * what sessions may cost. A caller encrypts with the passphrase of its path (media.paths.<glob>.srtPassphrase)
 * or this global one; with a passphrase set, unencrypted callers and wrong passphrases are refused.
 */
export const srtSchema = z
  .object({
    /** TSBPD latency in ms (libsrt's default is 120). */
    latencyMs: z.number().int().min(20).max(10000).default(120),
    /** 10-79 characters; null: no encryption (unless a path sets its own). */
    passphrase: z.string().min(10).max(79).nullable().default(null),
    /** AES key length (bytes) advertised to callers: 16, 24 or 32. */
    pbkeylen: z.union([z.literal(16), z.literal(24), z.literal(32)]).default(16),
    /** Sessions (publishers and readers) at once, and from one client address. */
    maxSessions: z.number().int().positive().default(64),
    maxSessionsPerAddress: z.number().int().positive().default(16),
    /** A caller that sends nothing (not even a keepalive) for this long is gone. */
    peerIdleTimeoutSeconds: z.number().positive().default(5),
    /** Packets (up to 1316 bytes each) one session may buffer for ordering and retransmission, each way. */
    receiveBufferPackets: z.number().int().min(64).max(65536).default(8192),
    sendBufferPackets: z.number().int().min(64).max(65536).default(8192),
    /** Bytes all SRT publishers' receive buffers may hold together. */
    totalBufferBytes: z
      .number()
      .int()
      .min(1024 * 1024)
      .default(256 * 1024 * 1024),
  })
  .strict();
/** RTSPS (RTSP over TLS, TCP-interleaved RTP) on its own port; cert/key as media.rtmps (null: the generated pair). */
export const rtspsSchema = tlsListenerSchema(8322);

/**
 * The RTSP server (RFC 2326): publish with ANNOUNCE/RECORD, read with DESCRIBE/PLAY, rtsp://<host>:<port>/<path>;
 * RTP over UDP (a server port pair per track from udpPortMin..udpPortMax) or TCP-interleaved; H.264, H.265, AAC,
 * Opus. Keys as `?key=` or the Digest/Basic password (any user name).
 */
export const rtspSchema = z
  .object({
    enabled: z.boolean().default(true),
    port: port.default(8554),
    /** RTP/RTCP over UDP (false: TCP-interleaved only; UDP SETUPs get 461). */
    udp: z.boolean().default(true),
    /** Server UDP ports (RTP even, RTCP odd), one pair per set-up track. */
    udpPortMin: port.default(20000),
    udpPortMax: port.default(20999),
    /** Connections at once, per listener (RTSP and RTSPS each), and from one client address. */
    maxConnections: z.number().int().positive().default(1000),
    maxConnectionsPerAddress: z.number().int().positive().default(32),
    /** From accept to RECORD or PLAY. */
    handshakeTimeoutSeconds: z.number().positive().default(10),
    /** A session whose peer sends nothing (no request, no RTP/RTCP) for this long is closed; also its advertised timeout. */
    idleTimeoutSeconds: z.number().positive().default(60),
    /** Largest request head (request line + headers), header count, and body (an ANNOUNCE's SDP). */
    maxRequestBytes: z
      .number()
      .int()
      .min(1024)
      .default(16 * 1024),
    maxHeaders: z.number().int().min(8).default(64),
    maxBodyBytes: z
      .number()
      .int()
      .min(1024)
      .default(64 * 1024),
    /** Requests a connection may send before it records or plays (a flood before auth is cut off). */
    maxRequestsBeforeStart: z.number().int().min(4).default(64),
    rtsps: rtspsSchema.default(() => rtspsSchema.parse({})),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (r.udpPortMax <= r.udpPortMin)
      ctx.addIssue({ code: "custom", path: ["udpPortMax"], message: "must be greater than udpPortMin" });
  });

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
    /** HLS (/<path>/index.m3u8), LL-HLS, DASH (/<path>/index.mpd), HTTP-FLV (/<path>.flv), /api/streams, /health, /metrics. */
    httpPort: port.default(8888),
    /** Target segment duration; segments start on keyframes, so the GOP should divide it. */
    hlsSegmentSeconds: z.number().positive().max(30).default(1),
    /** LL-HLS part duration (one CMAF fragment); must be below hlsSegmentSeconds. */
    hlsPartSeconds: z.number().min(0.05).max(5).default(0.2),
    /** Segments listed in playlists and the DASH timeline. */
    hlsSegmentCount: z.number().int().min(3).max(100).default(7),
    /**
     * MPEG-TS HLS for legacy players (/<path>/ts.m3u8, version 3, no parts): the fMP4 segments remuxed to TS when
     * first requested, kept while the path is read as TS and dropped this many seconds after its last request.
     * 0: not served.
     */
    hlsMpegtsIdleSeconds: z.number().min(0).default(30),
    /** Frames a reader may have queued before it loses frames (counted as frames discarded). */
    readerQueueFrames: z.number().int().min(16).default(1024),
    /** ffmpeg binary (pulls, restreams, transcoding; HLS/DASH packaging and recording are in-process). */
    ffmpegPath: z.string().min(1).default("ffmpeg"),
    /** How long a finished stream's playlists stay readable (with ENDLIST) after its publisher leaves. */
    lingerSeconds: z.number().min(0).default(60),
    /**
     * SRT (UDP): a caller with streamid `publish:<path>` publishes MPEG-TS (H.264/H.265 + AAC/Opus) to <path>;
     * `read:<path>` reads it as MPEG-TS.
     */
    srtPort: port.default(8890),
    /** SRT latency, encryption and limits. */
    srt: srtSchema.default(() => srtSchema.parse({})),
    /** Connection caps, timeouts and memory budgets of the RTMP and RTMPS listeners. */
    rtmp: rtmpLimitsSchema.default(() => rtmpLimitsSchema.parse({})),
    /** RTMPS ingest and playback (rtmps://<host>:<rtmps.port>/<app>/<key>), off by default. */
    rtmps: rtmpsSchema.default(() => rtmpsSchema.parse({})),
    /** RTSP publish and read (rtsp://<host>:<rtsp.port>/<path>), and RTSPS; off by default. */
    rtsp: rtspSchema.default(() => rtspSchema.parse({})),
    /**
     * A publisher that leaves and comes back within this many seconds continues the same playlist (HLS:
     * EXT-X-DISCONTINUITY, DASH: a new Period) and players never see the end; after it, EXT-X-ENDLIST. RTMP
     * and HTTP-FLV players stay connected meanwhile and get the new publisher's headers, timestamps going on.
     */
    endGraceSeconds: z.number().min(0).default(5),
    /** An HTTP-FLV reader (/<path>.flv) whose connection takes no data for this long is closed. */
    httpFlvStallSeconds: z.number().positive().default(20),
    /**
     * HTTP-FLV viewers get the frames of this many milliseconds in one socket write (as SRS's `mw_latency`
     * merges writes): with 100 viewers, one write per frame per viewer was most of the service's CPU. Adds up to
     * this much latency; 0 writes each frame as it arrives.
     */
    httpFlvMergeMs: z.number().int().min(0).max(1000).default(50),
    /** Pull sources and restream destinations reconnect after retryInitialMs, doubling up to retryMaxMs. */
    retryInitialMs: z.number().int().positive().default(1000),
    retryMaxMs: z.number().int().positive().default(30000),
    /** A pull source that sends nothing for this long is dropped (and reconnects). */
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
    /** HLS viewer mesh: segments shared between the player pages' viewers over WebRTC (off by default). */
    mesh: meshSchema.default(() => meshSchema.parse({})),
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
             * and /<path>/master.mpd list the source and the renditions. Default: none (remux only, no transcoding).
             */
            abr: abrLadderSchema.default([]),
            /** SRT passphrase for this path (10-79 characters); unset: media.srt.passphrase. */
            srtPassphrase: z.string().min(10).max(79).optional(),
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

export type MediaConfig = z.output<typeof mediaSchema>;
export type MeshConfig = z.output<typeof meshSchema>;
