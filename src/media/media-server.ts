/** The media service's process-level object: hub + RTMP ingest + per-path CMAF outputs + HTTP. */
import type { MediaConfig } from "../core/config.ts";
import type { Logger } from "../core/logger.ts";
import { Hub } from "./hub.ts";
import { Outputs } from "./outputs.ts";
import { MediaHttpServer } from "./servers/http/server.ts";
import { RtmpServer } from "./servers/rtmp/server.ts";
import { type StreamStatus, streamStatus } from "./status.ts";

const urlHost = (h: string) => (h === "0.0.0.0" ? "127.0.0.1" : h === "::" ? "[::1]" : h.includes(":") ? `[${h}]` : h);

export class MediaServer {
  readonly hub: Hub;
  readonly outputs: Outputs;
  readonly rtmp: RtmpServer;
  readonly http: MediaHttpServer;
  readonly startedAt = Date.now();
  readonly #host: string;

  private constructor(c: MediaConfig, hub: Hub, outputs: Outputs, rtmp: RtmpServer, http: MediaHttpServer) {
    this.#host = urlHost(c.host);
    this.hub = hub;
    this.outputs = outputs;
    this.rtmp = rtmp;
    this.http = http;
  }

  static async start(c: MediaConfig, log: Logger): Promise<MediaServer> {
    const hub = new Hub({ readerQueue: c.readerQueueFrames, gopCache: 600 });
    const outputs = new Outputs(
      hub,
      {
        segmentSeconds: c.hlsSegmentSeconds,
        partSeconds: c.hlsPartSeconds,
        segmentCount: c.hlsSegmentCount,
        ffmpegPath: c.ffmpegPath,
        lingerMs: c.lingerSeconds * 1000,
      },
      log,
    );
    let self: MediaServer | undefined;
    const api = {
      statuses: () => self?.statuses() ?? [],
      rtmpConnections: () => self?.rtmp.conns.size ?? 0,
      startedAt: Date.now(),
    };
    const rtmp = await RtmpServer.start({ host: c.host, port: c.rtmpPort, hub, log });
    let http: MediaHttpServer;
    try {
      http = await MediaHttpServer.start({
        host: c.host,
        port: c.httpPort,
        outputs,
        api,
        log: log.child({ server: "http" }),
      });
    } catch (e) {
      await rtmp.close();
      throw e;
    }
    self = new MediaServer(c, hub, outputs, rtmp, http);
    return self;
  }

  get httpUrl(): string {
    return `http://${this.#host}:${this.http.port}`;
  }

  get rtmpUrl(): string {
    return `rtmp://${this.#host}:${this.rtmp.port}`;
  }

  /** Live streams, then finished ones whose outputs are still readable. */
  statuses(): StreamStatus[] {
    const live = this.hub.list();
    const out = live.map((s) => streamStatus(s, this.outputs, this.httpUrl));
    for (const s of this.outputs.lingering())
      if (!live.includes(s)) out.push(streamStatus(s, this.outputs, this.httpUrl));
    return out;
  }

  async close(): Promise<void> {
    this.hub.close();
    this.outputs.close();
    await Promise.all([this.rtmp.close(), this.http.close()]);
  }
}
