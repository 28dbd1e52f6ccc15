/**
 * DASH as players see it (DASH-IF IOP): ffmpeg publishes H.264 + AAC over RTMP; the MPD must list a video and an
 * audio AdaptationSet, each Representation with its own single-track init and segments, maxSegmentDuration, a
 * peak @bandwidth and UTCTiming pointing at the server's clock. Then real players read it: ffmpeg's DASH demuxer
 * decodes 20 s with A and V as separate streams and no errors, dash.js and (when installed) Shaka Player play
 * 20 s in headless Chromium without an error event.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { BrowserContext, Page } from "playwright-core";
import { configSchema } from "../../src/config.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { CHROMIUM, launchChromium } from "./helpers/browser.ts";
import { ffprobe, kinds, publish, until } from "./helpers/media-tools.ts";

const require = createRequire(import.meta.url);
const resolve = (id: string) => {
  try {
    return require.resolve(id);
  } catch {
    return undefined;
  }
};
// dashjs exports only its bundle's entry point; the full player bundle sits beside it.
const dashjsMain = resolve("dashjs");
const DASHJS = dashjsMain && join(dirname(dashjsMain), "dash.all.min.js");
// A devDependency: `npm ci` installs it (NODE_PATH may point at a private install).
const SHAKA = resolve("shaka-player/dist/shaka-player.compiled.js");

const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
const opts = { skip: hasFfmpeg ? false : "ffmpeg is not installed" };
const browserOpts = { skip: opts.skip || (!existsSync(CHROMIUM) ? `${CHROMIUM} is missing` : false) };
const dir = mkdtempSync(join(tmpdir(), "ami-media-dash-"));
let m: MediaServer;
let publisher: ReturnType<typeof publish>;
let abrPublisher: ReturnType<typeof publish>;
let base: string;

before(async () => {
  if (opts.skip) return;
  // abr/*: a two-rung ladder below the 240p source, for the multi-rendition MPD.
  const ladder = [
    { name: "180p", height: 180, videoBitrate: "200k" },
    { name: "120p", height: 120, videoBitrate: "100k" },
  ];
  const media = {
    rtmpPort: 0,
    httpPort: 0,
    srtPort: 0,
    rtsp: { port: 0 },
    webrtc: { enabled: false },
    paths: { "abr/*": { abr: ladder } },
  };
  m = await MediaServer.start(configSchema.parse({ media }).media, silentLogger, { dataDir: dir });
  publisher = publish(`${m.rtmpUrl}/live/dash`, 240);
  abrPublisher = publish(`${m.rtmpUrl}/abr/cam`, 240);
  base = `${m.httpUrl}/live/dash`;
  await until("the MPD", async () => (await fetch(`${base}/index.mpd`)).ok);
});

after(async () => {
  publisher?.proc.kill("SIGKILL");
  abrPublisher?.proc.kill("SIGKILL");
  await m?.close();
  rmSync(dir, { recursive: true, force: true });
});

const attr = (xml: string, name: string) => new RegExp(`\\b${name}="([^"]*)"`).exec(xml)?.[1];
const sets = (xml: string) => [...xml.matchAll(/<AdaptationSet [^>]*>[\s\S]*?<\/AdaptationSet>/g)].map((x) => x[0]);

test("the MPD has one track per Representation, maxSegmentDuration, peak bandwidth and UTCTiming", opts, async () => {
  const xml = await (await fetch(`${base}/index.mpd`)).text();
  assert.equal(attr(xml, "type"), "dynamic");
  assert.match(attr(xml, "profiles") ?? "", /urn:mpeg:dash:profile:isoff-live:2011/);
  for (const a of ["availabilityStartTime", "publishTime", "minimumUpdatePeriod", "timeShiftBufferDepth"])
    assert.ok(attr(xml, a), a);
  assert.match(attr(xml, "maxSegmentDuration") ?? "", /^PT\d+\.\d{3}S$/);
  assert.ok(Number(/PT([\d.]+)S/.exec(attr(xml, "maxSegmentDuration") ?? "")?.[1]) >= 1);
  const [video, audio, more] = sets(xml);
  assert.equal(more, undefined, "two adaptation sets");
  assert.ok(video && audio);
  assert.equal(attr(video, "contentType"), "video");
  assert.equal(attr(video, "mimeType"), "video/mp4");
  assert.match(attr(video, "codecs") ?? "", /^avc1\.[0-9a-f]{6}$/, "video codecs only");
  assert.equal(attr(video, "width"), "320");
  assert.equal(attr(video, "frameRate"), "25");
  assert.equal(attr(video, "startWithSAP"), "1");
  assert.equal(attr(audio, "contentType"), "audio");
  assert.equal(attr(audio, "codecs"), "mp4a.40.2", "audio codecs only");
  assert.equal(attr(audio, "audioSamplingRate"), "44100");
  assert.match(audio, /<AudioChannelConfiguration schemeIdUri="[^"]+" value="1"\/>/);
  // The video's peak bitrate is far above the audio's: each Representation is measured on its own bytes.
  assert.ok(Number(attr(video, "bandwidth")) > Number(attr(audio, "bandwidth")));
  assert.ok(Number(attr(audio, "bandwidth")) > 10_000);
  const timing = /<UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="([^"]+)"\/>/.exec(xml)?.[1];
  assert.ok(timing, "UTCTiming http-iso");
  const clock = await fetch(timing);
  assert.equal(clock.headers.get("access-control-allow-origin"), "*");
  const skew = Date.parse(await clock.text()) - Date.now();
  assert.ok(Math.abs(skew) < 60_000, "the time endpoint answers ISO 8601 time");
  // Each Representation's files hold only its track.
  for (const [set, kind] of [
    [video, "video:h264"],
    [audio, "audio:aac"],
  ] as const) {
    const init = attr(set, "initialization") as string;
    const t = /<S t="(\d+)"/.exec(set)?.[1];
    const media = (attr(set, "media") as string).replace("$Time$", t as string);
    const bytes = Buffer.concat(
      await Promise.all([init, media].map(async (f) => Buffer.from(await (await fetch(`${base}/${f}`)).arrayBuffer()))),
    );
    assert.equal(bytes.includes(Buffer.from("cmfc")), true, "a CMAF track file");
    const file = join(dir, `${kind.replace(":", "-")}.mp4`);
    await import("node:fs/promises").then((fs) => fs.writeFile(file, bytes));
    assert.deepEqual(kinds(await ffprobe(file)), [kind]);
  }
  assert.equal((await fetch(`${base}/t1-1.m4s`)).status, 404, "an unknown time is a 404, not a hang");
});

interface PlayerState {
  time: number;
  errors: string[];
  audioBytes: number;
  videoFrames: number;
}

/** Loads a player script into a blank page of the media server's origin and plays the MPD with it. */
async function play(
  script: string,
  start: string,
  mpd = `${base}/index.mpd`,
): Promise<{ page: Page; close: () => Promise<void> }> {
  const { profile, context, page } = await launchChromium({
    viewport: { width: 640, height: 480 },
    args: ["--autoplay-policy=no-user-gesture-required"],
  });
  const close = async () => {
    await (context as BrowserContext).close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  };
  try {
    await page.goto(`${m.httpUrl}/_ami/time`);
    await page.setContent('<video muted autoplay playsinline width="320"></video>');
    await page.addScriptTag({ path: script });
    await page.evaluate(`(${start})(${JSON.stringify(mpd)})`);
    return { page, close };
  } catch (e) {
    await close();
    throw e;
  }
}

const state = (page: Page) =>
  page.evaluate(() => {
    const v = document.querySelector("video") as HTMLVideoElement & { webkitAudioDecodedByteCount?: number };
    const w = window as unknown as { errors: string[] };
    return {
      time: v.currentTime,
      errors: w.errors,
      audioBytes: v.webkitAudioDecodedByteCount ?? 0,
      videoFrames: v.getVideoPlaybackQuality().totalVideoFrames,
    } satisfies PlayerState;
  });

/** 20 s of media played: currentTime advanced that far, audio and video decoded, no error event. */
async function plays20s(page: Page): Promise<PlayerState> {
  const t0 = await until(
    "playback to start",
    async () => ((await state(page)).time > 0.2 ? state(page) : undefined),
    45_000,
  ).catch(async (e) => {
    throw new Error(`${(e as Error).message}: ${JSON.stringify(await state(page))}`);
  });
  const t1 = await until(
    "20 s of playback",
    async () => {
      const s = await state(page);
      assert.deepEqual(s.errors, []);
      return s.time >= t0.time + 20 ? s : undefined;
    },
    90_000,
  );
  assert.ok(t1.audioBytes > 0, "audio decoded");
  assert.ok(t1.videoFrames > 400, `${t1.videoFrames} video frames decoded`);
  return t1;
}

// The three players read the same live stream side by side: each needs 20 s of real time, not 60 s in a row.
describe("20 s of playback", { concurrency: true }, () => {
  test("ffmpeg's DASH demuxer decodes 20 s, audio and video as separate streams, without errors", opts, async () => {
    const ff = spawn("ffmpeg", ["-hide_banner", "-nostdin", "-i", `${base}/index.mpd`, "-t", "20", "-f", "null", "-"]);
    let log = "";
    ff.stderr.on("data", (d: Buffer) => {
      log += d.toString();
    });
    const code = await new Promise((r) => ff.once("close", r));
    assert.equal(code, 0, log.slice(-2000));
    assert.match(log, /Stream #0:0: Video: h264[^\n]*\n\s+Metadata:\n\s+variant_bitrate[^\n]*\n\s+id\s+: v1/);
    assert.match(log, /Stream #0:1: Audio: aac[^\n]*\n\s+Metadata:\n\s+variant_bitrate[^\n]*\n\s+id\s+: a2/);
    const times = [...log.matchAll(/time=(\d\d):(\d\d):(\d\d\.\d\d)/g)].map((x) => +x[1] * 3600 + +x[2] * 60 + +x[3]);
    assert.ok((times.at(-1) ?? 0) >= 19.9, `decoded ${times.at(-1)} s`);
    const frames = Number([...log.matchAll(/frame=\s*(\d+)/g)].at(-1)?.[1]);
    assert.ok(frames >= 490 && frames <= 510, `${frames} video frames in 20 s at 25 fps (no segment read twice)`);
    assert.doesNotMatch(log, /error|non monotonic|invalid/i);
  });

  test("dash.js plays 20 s in Chromium without errors", browserOpts, async () => {
    assert.ok(DASHJS, "dashjs is a dependency");
    const { page, close } = await play(
      DASHJS,
      `(url) => {
      window.errors = [];
      const p = dashjs.MediaPlayer().create();
      p.on(dashjs.MediaPlayer.events.ERROR, (e) => window.errors.push(JSON.stringify(e.error ?? e)));
      p.on(dashjs.MediaPlayer.events.PLAYBACK_ERROR, (e) => window.errors.push(String(e.error)));
      p.initialize(document.querySelector("video"), url, true);
      window.player = p;
    }`,
    );
    try {
      await plays20s(page);
      const tracks = await page.evaluate(() => {
        const p = (window as unknown as { player: { getTracksFor(t: string): { codec: string }[] } }).player;
        return [p.getTracksFor("video").map((t) => t.codec), p.getTracksFor("audio").map((t) => t.codec)];
      });
      assert.match(String(tracks[0]), /avc1/);
      assert.match(String(tracks[1]), /mp4a/);
    } finally {
      await close();
    }
  });

  test("Shaka Player plays 20 s in Chromium without errors", {
    skip: browserOpts.skip || (!SHAKA && "shaka-player is not installed (npm ci)"),
  }, async () => {
    const { page, close } = await play(
      SHAKA as string,
      `async (url) => {
      window.errors = [];
      shaka.polyfill.installAll();
      const p = new shaka.Player();
      p.addEventListener("error", (e) => window.errors.push(JSON.stringify(e.detail)));
      await p.attach(document.querySelector("video"));
      await p.load(url);
      window.player = p;
    }`,
    );
    try {
      await plays20s(page);
      const variant = await page.evaluate(() => {
        const p = (
          window as unknown as { player: { getVariantTracks(): { videoCodec: string; audioCodec: string }[] } }
        ).player;
        return p.getVariantTracks()[0];
      });
      assert.match(variant?.videoCodec ?? "", /avc1/);
      assert.match(variant?.audioCodec ?? "", /mp4a/);
    } finally {
      await close();
    }
  });
});

const DASHJS_START = `(url) => {
  window.errors = [];
  const p = dashjs.MediaPlayer().create();
  p.on(dashjs.MediaPlayer.events.ERROR, (e) => window.errors.push(JSON.stringify(e.error ?? e)));
  p.on(dashjs.MediaPlayer.events.PLAYBACK_ERROR, (e) => window.errors.push(String(e.error)));
  p.updateSettings({ streaming: { abr: { autoSwitchBitrate: { video: false } } } });
  window.rendered = [];
  p.on(dashjs.MediaPlayer.events.QUALITY_CHANGE_RENDERED, (e) => {
    if (e.mediaType === "video") window.rendered.push(e.newRepresentation?.height);
  });
  p.initialize(document.querySelector("video"), url, true);
  window.player = p;
}`;

test(
  "the ABR ladder's master.mpd: one video set with the source and each rendition, dash.js switches",
  browserOpts,
  async () => {
    const url = `${m.httpUrl}/abr/cam/master.mpd`;
    const xml = await until(
      "both renditions in master.mpd",
      async () => {
        const r = await fetch(url);
        const x = r.ok ? await r.text() : "";
        return x.includes('height="120"') && x.includes('height="180"') ? x : undefined;
      },
      60_000,
    );
    const [video, audio, more] = sets(xml);
    assert.equal(more, undefined);
    assert.equal(attr(video ?? "", "contentType"), "video");
    assert.equal(attr(audio ?? "", "contentType"), "audio");
    const reps = [...(video ?? "").matchAll(/<Representation [^>]*>/g)].map((x) => [
      attr(x[0], "height"),
      attr(x[0], "bandwidth"),
    ]);
    assert.deepEqual(
      reps.map((r) => r[0]),
      ["240", "180", "120"],
    );
    assert.ok(reps.every((r) => Number(r[1]) > 0));
    assert.match(video ?? "", /initialization="120p\/t1-init.mp4" media="120p\/t1-\$Time\$.m4s"/);
    const { page, close } = await play(DASHJS as string, DASHJS_START, url);
    try {
      await until("playback", async () => ((await state(page)).time > 0.5 ? true : undefined), 45_000);
      // Force the lowest rendition, then the highest: each switch must reach the picture and keep playing.
      for (const height of [120, 240]) {
        await page.evaluate((h) => {
          const p = (
            window as unknown as {
              player: {
                getRepresentationsByType(t: string): { height: number }[];
                setRepresentationForTypeByIndex(t: string, i: number, f: boolean): void;
              };
            }
          ).player;
          const i = p.getRepresentationsByType("video").findIndex((r) => r.height === h);
          p.setRepresentationForTypeByIndex("video", i, true);
        }, height);
        await until(
          `the ${height}p picture`,
          async () =>
            (await page.evaluate(() => (document.querySelector("video") as HTMLVideoElement).videoHeight)) === height
              ? true
              : undefined,
          45_000,
        );
        // dash.js itself says so: the rendered representation changed to it, and it is the current one. Its
        // QUALITY_CHANGE_RENDERED can come a little after the <video> reports the new height (CI saw it late).
        const dashjsSays = () =>
          page.evaluate(() => {
            const w = window as unknown as {
              rendered: number[];
              player: { getCurrentRepresentationForType(t: string): { height: number } | null };
            };
            return { rendered: w.rendered, current: w.player.getCurrentRepresentationForType("video")?.height };
          });
        await until(
          `dash.js to report the ${height}p rendition rendered`,
          async () => ((await dashjsSays()).rendered.includes(height) ? true : undefined),
          10_000,
        ).catch(() => {});
        const played = await dashjsSays();
        assert.equal(played.current, height);
        assert.ok(played.rendered.includes(height), `quality changes rendered: ${played.rendered}`);
        const t0 = (await state(page)).time;
        await until("playback to go on", async () => ((await state(page)).time > t0 + 2 ? true : undefined), 30_000);
        assert.deepEqual((await state(page)).errors, []);
      }
    } finally {
      await close();
    }
  },
);
