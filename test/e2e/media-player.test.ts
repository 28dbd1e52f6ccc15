/**
 * The player pages in real Chromium: ffmpeg publishes over RTMP, `/` lists the live stream with a link, and the
 * stream's page plays it with hls.js (served by the media server, no CDN) until the video's currentTime advances;
 * then the DASH button plays it with dash.js and the WebRTC button over WHEP. Screenshots at phone size go to
 * test-artifacts/.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
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
const artifacts = fileURLToPath(new URL("../../test-artifacts/", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "ami-media-player-"));
let m: MediaServer;
let context: BrowserContext;
let page: Page;
let profile: string;
let publisher: ReturnType<typeof publish>;
const pageErrors: string[] = [];

before(async () => {
  if (opts.skip) return;
  const media = { rtmpPort: 0, httpPort: 0, srtPort: 0, rtsp: { port: 0 } };
  m = await MediaServer.start(configSchema.parse({ media }).media, silentLogger, { dataDir: dir });
  // A local publisher needs no key (media.trustLoopbackPublishers, on by default).
  publisher = publish(`${m.rtmpUrl}/live/show`, 120);
  await until("live/show to go live", async () => m.hub.get("live/show"));
  ({ profile, context, page } = await launchChromium({
    viewport: { width: 390, height: 844 },
    args: ["--autoplay-policy=no-user-gesture-required"],
  }));
  page.on("pageerror", (e) => pageErrors.push(String(e)));
});

after(async () => {
  await context?.close().catch(() => {});
  publisher?.proc.kill("SIGKILL");
  await m?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
});

async function screenshot(name: string): Promise<void> {
  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: join(artifacts, name) });
}

/** currentTime now, then once it has moved on by `by` seconds: the video is really playing. */
async function advances(by = 1): Promise<[number, number]> {
  const t0 = await until(
    "the video to start",
    async () => {
      const t = await page.evaluate(() => document.querySelector("video")?.currentTime ?? 0);
      return t > 0.5 ? t : undefined;
    },
    45000,
  );
  const t1 = await until(
    "currentTime to advance",
    async () => {
      const t = await page.evaluate(() => document.querySelector("video")?.currentTime ?? 0);
      return t > t0 + by ? t : undefined;
    },
    30000 + by * 2000,
  );
  return [t0, t1];
}

test("/ lists the live stream and its page plays HLS with hls.js", opts, async () => {
  await page.goto(`${m.httpUrl}/`);
  const link = page.getByRole("link", { name: "live/show" });
  assert.equal(await link.getAttribute("href"), "/live/show/");
  await link.click();
  await page.waitForURL(`${m.httpUrl}/live/show/`);
  assert.equal(await page.getByRole("heading", { level: 1 }).textContent(), "live/show");
  assert.equal(await page.evaluate(() => typeof (window as unknown as { Hls?: unknown }).Hls), "function");
  const [t0, t1] = await advances();
  assert.ok(t1 > t0);
  assert.equal(await page.getByRole("button", { name: "HLS" }).getAttribute("aria-pressed"), "true");
  await page.locator('main[data-playing="hls"]').waitFor();
  await screenshot("media-player-phone-hls.png");
  assert.deepEqual(pageErrors, []);
});

test("the DASH button plays the same stream with dash.js", opts, async () => {
  await page.getByRole("button", { name: "DASH" }).click();
  assert.equal(await page.getByRole("button", { name: "DASH" }).getAttribute("aria-pressed"), "true");
  await page.locator('main[data-playing="dash"]').waitFor({ timeout: 30000 });
  // Past the first manifest's segments: live DASH must keep refreshing the MPD, not stall after one buffer.
  const [t0, t1] = await advances(12);
  assert.ok(t1 > t0);
  await screenshot("media-player-phone-dash.png");
  assert.deepEqual(pageErrors, []);
});

test("the WebRTC button plays the stream over WHEP", opts, async () => {
  await page.getByRole("button", { name: "WebRTC" }).click();
  await page.locator('main[data-playing="webrtc"]').waitFor({ timeout: 30000 });
  const [t0, t1] = await advances();
  assert.ok(t1 > t0);
  await screenshot("media-player-phone-webrtc.png");
  assert.deepEqual(pageErrors, []);
});
