/** The `media` service as the supervisor sees it. */
import type { ServiceDef } from "../core/service.ts";

const host = (h: string) => (h === "0.0.0.0" ? "127.0.0.1" : h === "::" ? "[::1]" : h.includes(":") ? `[${h}]` : h);

export const mediaService: ServiceDef = {
  name: "media",
  summary: "Live media: RTMP ingest, HLS / LL-HLS / DASH output (ffmpeg remuxes, no transcoding)",
  enabled: (c) => c.media.enabled,
  baseUrl: (c) => `http://${host(c.media.host)}:${c.media.httpPort}`,
  describe: (c) => [
    `media: publish rtmp://${host(c.media.host)}:${c.media.rtmpPort}/live/<key> (OBS: server rtmp://${host(c.media.host)}:${c.media.rtmpPort}/live, key <key>)`,
    `  play http://${host(c.media.host)}:${c.media.httpPort}/live/<key>/index.m3u8 (HLS, LL-HLS) or .../index.mpd (DASH)`,
    "  list streams:  ami-streams stream list",
  ],
  async start(config, { log }) {
    // Loaded here, not at the top: the CLI lists services on every call and should not pay for the media server.
    const { MediaServer } = await import("./media-server.ts");
    const m = await MediaServer.start(config.media, log);
    return { url: m.httpUrl, close: () => m.close() };
  },
};
