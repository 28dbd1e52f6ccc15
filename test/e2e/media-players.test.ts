/**
 * Players on a stream that has been live for a while. The media server places every publisher's media on the
 * stream's own clock (the first frame is time 0), so a publisher's timestamps (ffmpeg -output_ts_offset) do not
 * age a stream; what ages it for a player is the window: its first segment's time, the media sequence, the
 * tfdts, all as far from 0 as the stream is old. So the stream is published in real time until the window has
 * slid 15 segments past its start (the players' failures seen so far all scale with that distance: GStreamer's
 * dashdemux2 waited the window's age before its first fragment), then, at once:
 *  - GStreamer playbin3 (dashdemux2) and playbin (dashdemux) each render 5 s of the DASH MPD within 40 s, without
 *    an error message;
 *  - VLC (as nobody, null outputs) displays frames of the DASH MPD and of the HLS playlist (its own statistics);
 *  - ffmpeg's HLS demuxer decodes 10 s of it without errors;
 *  - hls.js in headless Chromium plays 10 s of it (currentTime and decoded frames).
 * playbin/playbin3 on HLS of such a stream: media-hls-gstreamer.test.ts; dash.js, Shaka, ffmpeg on DASH:
 * media-dash.test.ts.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { after, before, describe, test } from "node:test";
import { configSchema } from "../../src/config.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { CHROMIUM, launchChromium } from "./helpers/browser.ts";
import { gstPlayed, publish, until, vlcStats } from "./helpers/media-tools.ts";

const require = createRequire(import.meta.url);
const HLSJS = require.resolve("hls.js/dist/hls.min.js");
const has = (cmd: string, flag: string) => spawnSync(cmd, [flag]).status === 0;
const hasFfmpeg = has("ffmpeg", "-version");
const skip = (what: boolean, why: string) => ({ skip: !hasFfmpeg ? "ffmpeg is not installed" : what ? false : why });
const gst = skip(has("gst-launch-1.0", "--version"), "gst-launch-1.0 is not installed");
const vlc = skip(existsSync("/usr/bin/vlc"), "VLC is not installed");
const browser = skip(existsSync(CHROMIUM), `${CHROMIUM} is missing`);
const PATH = "live/aged";
let m: MediaServer;
let pub: ReturnType<typeof publish> | undefined;
let base: string;

before(async () => {
  if (!hasFfmpeg) return;
  m = await MediaServer.start(
    configSchema.parse({
      media: { rtmpPort: 0, httpPort: 0, srtPort: 0, rtsp: { port: 0 }, webrtc: { enabled: false } },
    }).media,
    silentLogger,
  );
  base = `${m.httpUrl}/${PATH}`;
  pub = publish(`${m.rtmpUrl}/${PATH}`, 150);
  await until(
    "the window to slide 15 segments",
    async () => {
      const r = await fetch(`${base}/stream.m3u8`);
      return Number(/^#EXT-X-MEDIA-SEQUENCE:(\d+)$/m.exec(await r.text())?.[1] ?? 0) >= 15;
    },
    90_000,
  );
});

after(async () => {
  pub?.proc.kill("SIGKILL");
  await pub?.exit;
  await m?.close();
});

describe("a stream live for a while", { concurrency: true }, () => {
  for (const [element, demux] of [
    ["playbin3", "dashdemux2"],
    ["playbin", "dashdemux"],
  ] as const) {
    test(`GStreamer ${element} (${demux}) plays the DASH MPD`, gst, async () => {
      const { played, errors } = await gstPlayed(element, `${base}/index.mpd`, 40, 8);
      assert.deepEqual(errors, []);
      assert.ok(played >= 5, `${played.toFixed(2)} s rendered`);
    });
  }

  for (const [name, file] of [
    ["DASH MPD", "index.mpd"],
    ["HLS playlist", "index.m3u8"],
  ] as const) {
    test(`VLC plays the ${name}`, vlc, async () => {
      const s = await vlcStats(`${base}/${file}`, 15);
      // 25 fps: at least 4 s of pictures shown and audio played, none of them lost wholesale.
      assert.ok(s.displayed >= 100, `${s.displayed} frames displayed: ${s.log.slice(-1500)}`);
      assert.ok(s.audioPlayed >= 100, `${s.audioPlayed} audio buffers played`);
      assert.ok(s.lost <= s.displayed / 10, `${s.lost} frames lost`);
      // Not a failed segment; VLC's "PCR is called too late" (it raised its own buffering at start) is not one.
      assert.doesNotMatch(s.log, /adaptive demux error/);
    });
  }

  test("ffmpeg decodes 10 s of the HLS playlist", { skip: !hasFfmpeg && "ffmpeg is not installed" }, async () => {
    const ff = spawn("ffmpeg", ["-hide_banner", "-nostdin", "-i", `${base}/index.m3u8`, "-t", "10", "-f", "null", "-"]);
    let log = "";
    ff.stderr.on("data", (d: Buffer) => {
      log += d.toString();
    });
    const code = await new Promise((r) => ff.once("close", r));
    assert.equal(code, 0, log.slice(-2000));
    const frames = Number([...log.matchAll(/frame=\s*(\d+)/g)].at(-1)?.[1]);
    assert.ok(frames >= 240, `${frames} video frames`);
    assert.doesNotMatch(log, /error|non monotonic|invalid/i);
  });

  test("hls.js plays 10 s of it in Chromium", browser, async () => {
    const { profile, context, page } = await launchChromium({
      viewport: { width: 640, height: 480 },
      args: ["--autoplay-policy=no-user-gesture-required"],
    });
    try {
      await page.goto(`${m.httpUrl}/_ami/time`);
      await page.setContent('<video muted autoplay playsinline width="320"></video>');
      await page.addScriptTag({ path: HLSJS });
      await page.evaluate((url) => {
        const w = window as unknown as { errors: string[]; Hls: new () => HlsLike };
        interface HlsLike {
          on(e: string, f: (e: unknown, d: { fatal: boolean; details: string }) => void): void;
          loadSource(u: string): void;
          attachMedia(v: HTMLVideoElement): void;
        }
        w.errors = [];
        const h = new w.Hls();
        h.on("hlsError", (_e, d) => {
          if (d.fatal) w.errors.push(d.details);
        });
        h.loadSource(url);
        h.attachMedia(document.querySelector("video") as HTMLVideoElement);
      }, `${base}/index.m3u8`);
      const state = () =>
        page.evaluate(() => {
          const v = document.querySelector("video") as HTMLVideoElement;
          const errors = (window as unknown as { errors: string[] }).errors;
          return { time: v.currentTime, frames: v.getVideoPlaybackQuality().totalVideoFrames, errors };
        });
      const t0 = await until("playback to start", async () => ((await state()).time > 0.2 ? state() : undefined));
      const t1 = await until(
        "10 s of playback",
        async () => {
          const s = await state();
          assert.deepEqual(s.errors, []);
          return s.time >= t0.time + 10 ? s : undefined;
        },
        60_000,
      );
      assert.ok(t1.frames > t0.frames + 200, `${t1.frames - t0.frames} frames decoded`);
    } finally {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    }
  });
});
