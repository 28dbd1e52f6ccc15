/**
 * The media service's process-level object: hub + RTMP and SRT ingest + pulls + per-path CMAF outputs,
 * recordings and restreams + HTTP.
 */

import { join } from "node:path";
import type { CasStore } from "../cas/types.ts";
import type { MediaConfig } from "../config.ts";
import { urlHost } from "../core/http/address.ts";
import type { Logger } from "../core/logger.ts";
import { defaultHome } from "../core/paths.ts";
import { Abr } from "./abr/abr.ts";
import { MediaAuth, PathGlobs } from "./auth/auth.ts";
import { Hub } from "./hub.ts";
import { MeshSignal } from "./mesh/signal.ts";
import { Outputs } from "./outputs.ts";
import { Playback } from "./playback.ts";
import { Pulls } from "./pulls.ts";
import { Recordings } from "./recordings.ts";
import { Restreams } from "./restreams.ts";
import { MediaHttpServer } from "./servers/http/server.ts";
import { RtmpServer, rtmpLimits } from "./servers/rtmp/server.ts";
import { rtmpsFiles } from "./servers/rtmp/tls.ts";
import { RtspServer } from "./servers/rtsp/server.ts";
import { SrtServer } from "./servers/srt/server.ts";
import { WebRtcServer } from "./servers/webrtc/server.ts";
import { restore, StateFile, snapshot } from "./state.ts";
import { offlineStatus, type StreamStatus, streamStatus } from "./status.ts";

const isLoopback = (h: string) => h === "localhost" || h === "::1" || h.startsWith("127.");

export interface MediaServerExtras {
  /**
   * The service's data directory (default <home>/data/media); recordings go under it unless media.recordPath.
   * Given explicitly (as the service does), pulls, recordings and restreams are saved in it and restored on start.
   */
  dataDir?: string;
  /** Bearer token that run-time changes (pulls, recordings, restreams) must carry. */
  apiToken?: string;
  /** The runtime home's content-addressed store: finished recording files go into it (recordings.ts). */
  cas?: CasStore;
}

export class MediaServer {
  readonly hub: Hub;
  readonly outputs: Outputs;
  readonly pulls: Pulls;
  readonly recordings: Recordings;
  readonly restreams: Restreams;
  /** ABR ladders (media.paths.<glob>.abr): renditions published as <path>/<name>. */
  readonly abr: Abr;
  /** Publish/read permissions, stream keys, signed URLs, auth hook (media.paths and friends). */
  readonly auth: MediaAuth;
  rtmp!: RtmpServer;
  /** RTMP over TLS (undefined: media.rtmps.enabled is false). */
  rtmps: RtmpServer | undefined;
  srt!: SrtServer;
  /** RTSP and RTSPS (undefined: media.rtsp.enabled / media.rtsp.rtsps.enabled is false). */
  rtsp: RtspServer | undefined;
  rtsps: RtspServer | undefined;
  /** WHIP/WHEP sessions (undefined: media.webrtc.enabled is false). */
  webrtc: WebRtcServer | undefined;
  http!: MediaHttpServer;
  /** The HLS viewer mesh's signalling (undefined: media.mesh.enabled is false). */
  readonly mesh: MeshSignal | undefined;
  readonly startedAt = Date.now();
  readonly #host: string;
  /** The MPEG-TS HLS variant is served (media.hlsMpegtsIdleSeconds > 0). */
  readonly #mpegts: boolean;
  readonly #dataDir: string;
  readonly #state: StateFile | undefined;
  /** Saving is held while the saved state is being restored (one save at the end). */
  #restoring = false;

  private constructor(c: MediaConfig, log: Logger, x: MediaServerExtras) {
    this.#host = urlHost(c.host);
    this.#mpegts = c.hlsMpegtsIdleSeconds > 0;
    this.#dataDir = x.dataDir ?? join(defaultHome(), "data", "media");
    this.auth = new MediaAuth(c, this.#dataDir, log.child({ server: "auth" }));
    this.hub = new Hub({ readerQueue: c.readerQueueFrames, gopCache: 600 });
    const hub = this.hub;
    this.outputs = new Outputs(
      hub,
      {
        segmentSeconds: c.hlsSegmentSeconds,
        partSeconds: c.hlsPartSeconds,
        segmentCount: c.hlsSegmentCount,
        ffmpegPath: c.ffmpegPath,
        lingerMs: c.lingerSeconds * 1000,
        endGraceMs: c.endGraceSeconds * 1000,
      },
      log,
    );
    this.mesh = c.mesh.enabled
      ? new MeshSignal({ config: c.mesh, outputs: this.outputs, auth: this.auth, log: log.child({ server: "mesh" }) })
      : undefined;
    const retry = { retryInitialMs: c.retryInitialMs, retryMaxMs: c.retryMaxMs };
    const abrLog = log.child({ server: "abr" });
    this.abr = new Abr({ hub, paths: c.paths, encoder: c.encoder, ffmpegPath: c.ffmpegPath, ...retry, log: abrLog });
    this.auth.readAs = (path) => this.abr.sourceOf(path);
    const stallMs = c.sourceStallSeconds * 1000;
    this.#state = x.dataDir ? new StateFile(join(x.dataDir, "state.json"), log.child({ server: "state" })) : undefined;
    const onChange = () => {
      if (!this.#restoring) this.#state?.save(snapshot(this));
    };
    this.pulls = new Pulls({ hub, ffmpegPath: c.ffmpegPath, ...retry, stallMs, log, onChange });
    this.restreams = new Restreams({ hub, ffmpegPath: c.ffmpegPath, ...retry, log, onChange });
    this.recordings = new Recordings({
      onChange,
      hub,
      dir: c.recordPath ?? join(this.#dataDir, "recordings"),
      ffmpegPath: c.ffmpegPath,
      segmentSeconds: c.recordSegmentSeconds,
      maxAgeSeconds: c.recordMaxAgeHours * 3600,
      maxBytes: c.recordMaxBytes,
      log,
      cas: x.cas,
    });
  }

  static async start(c: MediaConfig, log: Logger, x: MediaServerExtras = {}): Promise<MediaServer> {
    const m = new MediaServer(c, log, x);
    const opened: { close(): Promise<void> }[] = [];
    try {
      const limits = rtmpLimits(c.rtmp);
      const endGraceMs = c.endGraceSeconds * 1000;
      const rtmpBase = { hub: m.hub, log, auth: m.auth, limits, endGraceMs };
      m.rtmp = await RtmpServer.start({ host: c.host, port: c.rtmpPort, ...rtmpBase });
      opened.push(m.rtmp);
      if (c.rtmps.enabled) {
        const tls = await rtmpsFiles(c.rtmps, m.#dataDir, log.child({ server: "rtmps" }));
        const o = { host: c.host, port: c.rtmps.port, ...rtmpBase, tls };
        m.rtmps = await RtmpServer.start(o);
        opened.push(m.rtmps);
      }
      const srtPassphrases = new PathGlobs(
        Object.fromEntries(Object.entries(c.paths).map(([glob, r]) => [glob, r.srtPassphrase ?? null])),
      );
      m.srt = await SrtServer.start({
        host: c.host,
        port: c.srtPort,
        hub: m.hub,
        log,
        auth: m.auth,
        limits: c.srt,
        passphraseFor: (path) => srtPassphrases.get(path),
      });
      opened.push(m.srt);
      if (c.rtsp.enabled) {
        const udp = RtspServer.udpPorts(c.host, c.rtsp);
        const base = { host: c.host, hub: m.hub, log, auth: m.auth, config: c.rtsp, udp };
        m.rtsp = await RtspServer.start({ ...base, port: c.rtsp.port });
        opened.push(m.rtsp);
        if (c.rtsp.rtsps.enabled) {
          const tls = await rtmpsFiles(c.rtsp.rtsps, m.#dataDir, log.child({ server: "rtsps" }));
          m.rtsps = await RtspServer.start({ ...base, port: c.rtsp.rtsps.port, tls });
          opened.push(m.rtsps);
        }
      }
      if (c.webrtc.enabled)
        m.webrtc = new WebRtcServer({
          ...c.webrtc,
          hub: m.hub,
          ffmpegPath: c.ffmpegPath,
          log: log.child({ server: "webrtc" }),
        });
      m.http = await MediaHttpServer.start({
        host: c.host,
        port: c.httpPort,
        outputs: m.outputs,
        master: m.abr.master,
        renditions: m.abr.renditions,
        api: {
          statuses: () => m.statuses(),
          rtmpConnections: () => m.rtmp.conns.size + (m.rtmps?.conns.size ?? 0),
          startedAt: m.startedAt,
        },
        control: {
          pulls: m.pulls,
          recordings: m.recordings,
          restreams: m.restreams,
          token: x.apiToken,
          loopback: isLoopback(c.host),
          host: c.host,
        },
        log: log.child({ server: "http" }),
        auth: m.auth,
        web: {
          // Renditions are played through their source's page (master playlist), not listed on their own.
          streams: () => m.statuses().filter((s) => !m.abr.sourceOf(s.path)),
          whep: () => !!m.webrtc,
          mesh: (path) => !!m.mesh && m.auth.readOpen(path),
          auth: m.auth,
          hlsEntry: (path) => (m.abr.ladderFor(path).length > 0 ? "master.m3u8" : "index.m3u8"),
          dashEntry: (path) => (m.abr.ladderFor(path).length > 0 ? "master.mpd" : "index.mpd"),
        },
        webrtc: m.webrtc,
        mesh: m.mesh,
        playback: new Playback({ dir: m.recordings.dir, cas: x.cas }),
        mpegts: c.hlsMpegtsIdleSeconds > 0 ? { idleMs: c.hlsMpegtsIdleSeconds * 1000 } : undefined,
        flv: {
          hub: m.hub,
          graceMs: endGraceMs,
          stallMs: c.httpFlvStallSeconds * 1000,
          mergeMs: c.httpFlvMergeMs,
          log: log.child({ server: "flv" }),
        },
      });
    } catch (e) {
      await Promise.all(opened.map((o) => o.close()));
      throw e;
    }
    // Restored once every listener is up: a restream may point at this server's own RTMP(S) port.
    if (m.#state) {
      m.#restoring = true;
      const saved = m.#state.load();
      const restored = restore(saved, m, log.child({ server: "state" }));
      m.#restoring = false;
      const total = saved.pulls.length + saved.recordings.length + saved.restreams.length;
      if (restored !== total) m.#state.save(snapshot(m));
    }
    return m;
  }

  get httpUrl(): string {
    return `http://${this.#host}:${this.http.port}`;
  }

  get rtmpUrl(): string {
    return `rtmp://${this.#host}:${this.rtmp.port}`;
  }

  /** rtmps://host:port (throws when RTMPS is off). */
  get rtmpsUrl(): string {
    if (!this.rtmps) throw new Error("RTMPS is not enabled (media.rtmps.enabled)");
    return `rtmps://${this.#host}:${this.rtmps.port}`;
  }

  /** rtsp://host:port (throws when RTSP is off). */
  get rtspUrl(): string {
    if (!this.rtsp) throw new Error("RTSP is not enabled (media.rtsp.enabled)");
    return `rtsp://${this.#host}:${this.rtsp.port}`;
  }

  /** rtsps://host:port (throws when RTSPS is off). */
  get rtspsUrl(): string {
    if (!this.rtsps) throw new Error("RTSPS is not enabled (media.rtsp.rtsps.enabled)");
    return `rtsps://${this.#host}:${this.rtsps.port}`;
  }

  get srtUrl(): string {
    return `srt://${this.#host}:${this.srt.port}`;
  }

  /** Live streams, then finished ones whose outputs are still readable, then paths that only have a pull. */
  statuses(): StreamStatus[] {
    const live = this.hub.list();
    const out = live.map((s) => streamStatus(s, this.outputs, this.httpUrl));
    for (const s of this.outputs.lingering())
      if (!live.includes(s)) out.push(streamStatus(s, this.outputs, this.httpUrl));
    const known = new Set(out.map((s) => s.path));
    for (const p of [...this.pulls.list(), ...this.recordings.list(), ...this.restreams.list()])
      if (!known.has(p.path)) {
        known.add(p.path);
        out.push(offlineStatus(p.path, this.httpUrl));
      }
    for (const s of out) {
      s.pull = this.pulls.get(s.path) ?? null;
      s.recording = this.recordings.get(s.path) ?? null;
      s.restreams = this.restreams.list(s.path);
      s.abr = this.abr.status(s.path) ?? null;
      s.urls.rtmp = `${this.rtmpUrl}/${s.path}`;
      if (this.webrtc) s.urls.whep = `${this.httpUrl}/${s.path}/whep`;
      const stream = this.hub.get(s.path);
      s.webrtc = this.webrtc && stream && s.live ? this.webrtc.status(stream) : null;
      s.mesh = this.mesh?.status(s.path) ?? null;
      // Viewers of the re-encoded video read its private stream, not the path's: they are WebRTC readers too.
      const reencoded = s.webrtc?.reencoder?.viewers ?? 0;
      if (reencoded > 0) {
        s.readers.byProtocol.webrtc = (s.readers.byProtocol.webrtc ?? 0) + reencoded;
        s.readers.total += reencoded;
      }
      if (this.rtsp) s.urls.rtsp = `${this.rtspUrl}/${s.path}`;
      s.urls.srt = `${this.srtUrl}?streamid=read:${s.path}`;
      if (this.#mpegts) s.urls.hlsTs = `${this.httpUrl}/${s.path}/ts.m3u8`;
      if (this.abr.ladderFor(s.path).length > 0) {
        s.urls.master = `${this.httpUrl}/${s.path}/master.m3u8`;
        s.urls.masterDash = `${this.httpUrl}/${s.path}/master.mpd`;
      }
    }
    return out;
  }

  async close(): Promise<void> {
    await Promise.all([this.pulls.close(), this.recordings.close(), this.restreams.close(), this.abr.close()]);
    this.mesh?.close();
    this.hub.close();
    this.outputs.close();
    await Promise.all([
      this.rtmp.close(),
      this.rtmps?.close(),
      this.srt.close(),
      this.rtsp?.close(),
      this.rtsps?.close(),
      this.http.close(),
      this.webrtc?.close(),
    ]);
  }
}
