/**
 * Reconnects as real players see them (Chromium): the publisher is killed and a new one comes back within the
 * end grace; hls.js (across EXT-X-DISCONTINUITY) and dash.js (across the new Period) keep playing: the video's
 * time moves past the point where the first publisher stopped, and the page reports no errors. hls.js runs in the
 * stream's player page; dash.js in a bare page given the MPD's absolute URL (see playDash).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { after, before, test } from "node:test";
import type { BrowserContext, Page } from "playwright-core";
import { configSchema } from "../../src/config.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { CHROMIUM, launchChromium } from "./helpers/browser.ts";
import { publish, until } from "./helpers/media-tools.ts";

const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
const opts = {
  skip: !hasFfmpeg ? "ffmpeg is not installed" : !existsSync(CHROMIUM) ? `${CHROMIUM} is missing` : false,
};
let m: MediaServer;
let context: BrowserContext;
let page: Page;
let profile: string;
let publisher: ReturnType<typeof publish> | undefined;
const pageErrors: string[] = [];

before(async () => {
  if (opts.skip) return;
  const media = { rtmpPort: 0, httpPort: 0, srtPort: 0, rtsp: { port: 0 }, endGraceSeconds: 60 };
  m = await MediaServer.start(configSchema.parse({ media }).media, silentLogger);
  ({ profile, context, page } = await launchChromium({
    viewport: { width: 640, height: 480 },
    args: ["--autoplay-policy=no-user-gesture-required"],
  }));
  page.on("pageerror", (e) => pageErrors.push(String(e)));
});

after(async () => {
  await context?.close().catch(() => {});
  publisher?.proc.kill("SIGKILL");
  await m?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

const currentTime = () => page.evaluate(() => document.querySelector("video")?.currentTime ?? 0);
const wallNow = () => page.evaluate(() => Date.now());

/** dash.js on its own page, given the MPD's absolute URL (the player page's DASH path is tested in media-player). */
async function playDash(mpd: string): Promise<void> {
  const script = `${m.httpUrl}/_ami/player/dash.mediaplayer.min.js`;
  await page.setContent(`<!doctype html><video muted autoplay playsinline></video><script src="${script}"></script>`);
  await page.evaluate((url) => {
    const w = window as unknown as {
      dashjs: { MediaPlayer(): { create(): { initialize(v: Element | null, u: string, play: boolean): void } } };
    };
    w.dashjs.MediaPlayer().create().initialize(document.querySelector("video"), url, true);
  }, mpd);
}

/** Play `path` with `player`, replace the publisher mid-play, and check playback goes on past the switch. */
async function playsAcrossReconnect(path: string, player: "HLS" | "DASH"): Promise<void> {
  publisher = publish(`${m.rtmpUrl}/${path}`, 120);
  await until(`${path} to go live`, async () => m.hub.get(path));
  // Start once a few segments exist (a live player starts some way behind the edge).
  await until("three segments", async () => (m.outputs.get(path)?.packager.timeline.listed().length ?? 0) >= 3);
  if (player === "DASH") await playDash(`${m.httpUrl}/${path}/index.mpd`);
  else {
    await page.goto(`${m.httpUrl}/${path}/`);
    await page.locator('main[data-playing="hls"]').waitFor({ timeout: 30000 });
  }
  await until("the video to play a while", async () => (await currentTime()) > 3, 60000);

  publisher.proc.kill("SIGKILL");
  await publisher.exit;
  await until("the first publisher's end", async () => !m.hub.get(path));
  const atCut = await currentTime();
  const cutWall = await wallNow();
  publisher = publish(`${m.rtmpUrl}/${path}`, 120);
  // Played on at least 4 s of media after the cut: the player went through the switch to the new publisher's
  // content (the first publisher left at most a few seconds buffered).
  const trace: string[] = [];
  const played = await until(
    `${player} to play on past the reconnect`,
    async () => {
      const t = await currentTime();
      trace.push(`${t.toFixed(2)}@${((await wallNow()) - cutWall) / 1000}`);
      return t > atCut + 6 ? t : undefined;
    },
    90000,
  ).catch((e) => {
    throw new Error(
      `${(e as Error).message}; cut at ${atCut}; currentTime@s after the cut: ${trace.filter((_, i) => i % 10 === 0).join(" ")}`,
    );
  });
  assert.ok(played > atCut);
  const m3u8 = await (await fetch(`${m.httpUrl}/${path}/stream.m3u8`)).text();
  assert.match(m3u8, /#EXT-X-DISCONTINUITY/);
  assert.doesNotMatch(m3u8, /EXT-X-ENDLIST/);
  assert.ok((await wallNow()) > cutWall);
  publisher.proc.kill("SIGKILL");
  await publisher.exit;
  publisher = undefined;
  assert.deepEqual(pageErrors, []);
}

test("hls.js plays on across a publisher reconnect (EXT-X-DISCONTINUITY)", opts, async () => {
  await playsAcrossReconnect("live/rc-hls", "HLS");
});

test("dash.js plays on across a publisher reconnect (a new Period)", opts, async () => {
  await playsAcrossReconnect("live/rc-dash", "DASH");
});
