/**
 * HTTP-FLV in a browser: mpegts.js (the flv.js successor; a devDependency) in headless Chromium plays
 * `GET /<path>.flv` from the media server for 10 s — the video's currentTime advances that far, frames are decoded,
 * audio too, and the player reports no error. The page is about:blank, another origin than the media server's,
 * so the stream is read cross-origin and needs the endpoint's CORS header (`Access-Control-Allow-Origin: *`).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { after, before, test } from "node:test";
import { configSchema } from "../../src/config.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { CHROMIUM, launchChromium } from "./helpers/browser.ts";
import { publish, until } from "./helpers/media-tools.ts";

const require = createRequire(import.meta.url);
const resolve = (id: string) => {
  try {
    return require.resolve(id);
  } catch {
    return undefined;
  }
};
const MPEGTS = resolve("mpegts.js/dist/mpegts.js");
const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
const opts = {
  skip: !hasFfmpeg
    ? "ffmpeg is not installed"
    : !existsSync(CHROMIUM)
      ? `${CHROMIUM} is missing`
      : !MPEGTS && "mpegts.js is not installed (npm ci)",
};
const PATH = "live/flvweb";
let m: MediaServer;
let pub: ReturnType<typeof publish> | undefined;

before(async () => {
  if (opts.skip) return;
  m = await MediaServer.start(
    configSchema.parse({
      media: { rtmpPort: 0, httpPort: 0, srtPort: 0, rtsp: { port: 0 }, webrtc: { enabled: false } },
    }).media,
    silentLogger,
  );
  pub = publish(`${m.rtmpUrl}/${PATH}`, 60);
  await until("the stream", async () => (await fetch(`${m.httpUrl}/${PATH}/index.m3u8`)).ok);
});

after(async () => {
  pub?.proc.kill("SIGKILL");
  await pub?.exit;
  await m?.close();
});

test("mpegts.js plays HTTP-FLV cross-origin in Chromium for 10 s", opts, async () => {
  const url = `${m.httpUrl}/${PATH}.flv`;
  const head = await fetch(url, { method: "HEAD", headers: { origin: "http://elsewhere.example" } });
  assert.equal(head.headers.get("access-control-allow-origin"), "*");
  const { profile, context, page } = await launchChromium({
    viewport: { width: 640, height: 480 },
    args: ["--autoplay-policy=no-user-gesture-required"],
  });
  try {
    await page.setContent('<video muted autoplay playsinline width="320"></video>');
    await page.addScriptTag({ path: MPEGTS as string });
    assert.equal(await page.evaluate(() => location.origin === "null" || location.protocol === "about:"), true);
    await page.evaluate((src) => {
      interface Player {
        on(e: string, f: (...a: unknown[]) => void): void;
        attachMediaElement(v: HTMLVideoElement): void;
        load(): void;
        play(): Promise<void> | undefined;
      }
      const w = window as unknown as {
        errors: string[];
        mpegts: {
          isSupported(): boolean;
          createPlayer(d: object, c: object): Player;
          Events: { ERROR: string };
        };
      };
      w.errors = [];
      if (!w.mpegts.isSupported()) w.errors.push("mpegts.js: MSE unsupported");
      const p = w.mpegts.createPlayer({ type: "flv", isLive: true, url: src }, { enableWorker: false });
      p.on(w.mpegts.Events.ERROR, (...a) => w.errors.push(JSON.stringify(a)));
      p.attachMediaElement(document.querySelector("video") as HTMLVideoElement);
      p.load();
      p.play()?.catch((e: Error) => w.errors.push(String(e)));
    }, url);
    const state = () =>
      page.evaluate(() => {
        const v = document.querySelector("video") as HTMLVideoElement & { webkitAudioDecodedByteCount?: number };
        return {
          time: v.currentTime,
          frames: v.getVideoPlaybackQuality().totalVideoFrames,
          audioBytes: v.webkitAudioDecodedByteCount ?? 0,
          errors: (window as unknown as { errors: string[] }).errors,
        };
      });
    const t0 = await until("playback to start", async () => {
      const s = await state();
      assert.deepEqual(s.errors, []);
      return s.time > 0.2 ? s : undefined;
    });
    const t1 = await until(
      "10 s of playback",
      async () => {
        const s = await state();
        assert.deepEqual(s.errors, []);
        return s.time >= t0.time + 10 ? s : undefined;
      },
      45_000,
    );
    // 25 fps: 10 s of media is ~250 frames.
    assert.ok(t1.frames - t0.frames >= 200, `${t1.frames - t0.frames} frames decoded`);
    assert.ok(t1.audioBytes > t0.audioBytes, "audio decoded");
  } finally {
    await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
});
