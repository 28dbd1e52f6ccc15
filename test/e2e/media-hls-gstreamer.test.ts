/**
 * GStreamer playing the HLS output of a stream live longer than its playlist window (ffmpeg publishing over RTMP,
 * libx264 with 1 s GOPs): the default playbin (legacy hlsdemux in GStreamer 1.22) and playbin3 (hlsdemux2) must
 * each render 5 s of it within 30 s. The legacy hlsdemux positions fragments from the first playlist it loaded
 * while qtdemux stamps buffers with their tfdt, so without per-session decode times (protocols/hls/rebase.ts) its
 * sink waits for the age of the window's first segment before showing anything.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { configSchema } from "../../src/config.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { gstPlayed, publish, until } from "./helpers/media-tools.ts";

const has = (cmd: string, flag: string) => spawnSync(cmd, [flag]).status === 0;
const ok = has("ffmpeg", "-version") && has("gst-launch-1.0", "--version");
const opts = { skip: ok ? false : "ffmpeg or gst-launch-1.0 is not installed" };
const PATH = "live/gst";
let m: MediaServer;
let pub: ReturnType<typeof publish> | undefined;

before(async () => {
  if (!ok) return;
  m = await MediaServer.start(
    configSchema.parse({ media: { rtmpPort: 0, httpPort: 0, srtPort: 0, rtsp: { port: 0 } } }).media,
    silentLogger,
  );
  pub = publish(`${m.rtmpUrl}/${PATH}`, 150);
  // Live long enough that the 7-segment window has slid well past the stream's start.
  await until(
    "the window to slide",
    async () => {
      const r = await fetch(`${m.httpUrl}/${PATH}/stream.m3u8`);
      const seq = Number(/^#EXT-X-MEDIA-SEQUENCE:(\d+)$/m.exec(await r.text())?.[1] ?? 0);
      return seq >= 20;
    },
    90_000,
  );
});

after(async () => {
  pub?.proc.kill("SIGKILL");
  await pub?.exit;
  await m?.close();
});

/** Seconds of media rendered within `seconds`; gst-launch must not report an error. */
async function played(element: string, seconds: number): Promise<number> {
  const r = await gstPlayed(element, `${m.httpUrl}/${PATH}/index.m3u8`, seconds, 8);
  assert.deepEqual(r.errors, []);
  return r.played;
}

// Both players read the one stream side by side, each until it rendered 8 s (or 30 s went by).
describe("GStreamer", { concurrency: true }, () => {
  test("playbin3 (hlsdemux2) plays a stream live for a while", opts, async () => {
    const s = await played("playbin3", 30);
    assert.ok(s >= 5, `${s.toFixed(2)} s played`);
  });

  test("playbin (legacy hlsdemux) plays a stream live for a while", opts, async () => {
    const s = await played("playbin", 30);
    assert.ok(s >= 5, `${s.toFixed(2)} s played`);
  });
});
