/** The `media` service as the supervisor sees it. */
import { baseUrl, urlHost as host } from "../core/http/address.ts";
import type { ServiceDef } from "../core/service.ts";

export const mediaService: ServiceDef = {
  name: "media",
  summary:
    "Live media: RTMP / RTMPS / SRT / WHIP / RTSP ingest and pull sources, HLS / LL-HLS / DASH / WHEP / RTMP / RTSP output, recording, restream (remux, no transcoding unless an ABR ladder is configured)",
  enabled: (c) => c.media.enabled,
  baseUrl: (c) => baseUrl("http", c.media.host, c.media.httpPort),
  describe: (c) => [
    `media: publish rtmp://${host(c.media.host)}:${c.media.rtmpPort}/live/<name>?key=<key> (OBS: server rtmp://${host(c.media.host)}:${c.media.rtmpPort}/live, stream key <name>?key=<key>)`,
    ...(c.media.rtmps.enabled
      ? [
          `  RTMPS: rtmps://${host(c.media.host)}:${c.media.rtmps.port}/live/<name>?key=<key> (TLS; same paths and keys)`,
        ]
      : []),
    ...(c.media.rtsp.enabled
      ? [
          `  RTSP: rtsp://${host(c.media.host)}:${c.media.rtsp.port}/live/<name>?key=<key> (publish: ffmpeg -f rtsp; read: ffplay, VLC, GStreamer; the key may be the Digest password)`,
        ]
      : []),
    "  stream keys:   ami-streams stream key create live/<name> (publishers on this machine need none)",
    `  player pages:  http://${host(c.media.host)}:${c.media.httpPort}/  (HLS, LL-HLS, DASH, WebRTC/WHEP)`,
    `  play http://${host(c.media.host)}:${c.media.httpPort}/live/<name>/index.m3u8 (HLS, LL-HLS) or .../index.mpd (DASH)`,
    `  SRT: ffmpeg ... -f mpegts 'srt://${host(c.media.host)}:${c.media.srtPort}?streamid=publish:live/<name>' (read:live/<name> to play)`,
    "  pull a source: ami-streams stream start --source rtsp://... --path live/cam1",
    "  list streams:  ami-streams stream list",
  ],
  async start(config, { log, paths }) {
    // Loaded here, not at the top: the CLI lists services on every call and should not pay for the media server.
    const { MediaServer } = await import("./media-server.ts");
    const { readControlToken } = await import("../control/client.ts");
    const { openStore } = await import("../cas/open.ts");
    const { meshTurn } = await import("./mesh/turn.ts");
    const m = await MediaServer.start(config.media, log, {
      dataDir: paths.serviceData("media"),
      apiToken: readControlToken(config, paths),
      cas: openStore({ config, paths }),
      meshTurn: meshTurn(config),
    });
    return { url: m.httpUrl, close: () => m.close() };
  },
};
