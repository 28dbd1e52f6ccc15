/**
 * ABR ladders with real ffmpeg: a 480p RTMP publisher on a path with a 360p/240p(/720p) ladder gets renditions
 * at <path>/360p and <path>/240p (720p skipped); the master playlist parses with m3u8-parser and lists each
 * variant with its RESOLUTION, FRAME-RATE and CODECS; ffprobe reads each rendition's HLS at its height; a
 * signed source covers its renditions; a killed transcoder is restarted while the source plays on; the next
 * publisher gets the ladder again; in Chromium the player page loads the master playlist and hls.js plays a
 * rendition; bad ladder config is refused with clear messages; an unusable encoder (nvenc forced here) fails the
 * ladder, not the path.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Parser } from "m3u8-parser";
import { configSchema, validateConfig } from "../../src/config.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { detectEncoder } from "../../src/media/abr/encoders.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import type { StreamStatus } from "../../src/media/status.ts";
import { CHROMIUM, launchChromium } from "./helpers/browser.ts";
import { ffprobe, publish, until } from "./helpers/media-tools.ts";

const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
const opts = { skip: hasFfmpeg ? false : "ffmpeg is not installed" };
const browserOpts = { skip: opts.skip || (existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing`) };
const LADDER = [
  { name: "720p", height: 720, videoBitrate: "2M" },
  { name: "360p", height: 360, videoBitrate: "500k" },
  { name: "240p", height: 240, videoBitrate: "250k", fps: 15, audioBitrate: "64k" },
];
const dirs: string[] = [];
const servers: MediaServer[] = [];

async function start(media: Record<string, unknown>): Promise<MediaServer> {
  const dir = mkdtempSync(join(tmpdir(), "ami-media-abr-"));
  dirs.push(dir);
  const base = {
    rtmpPort: 0,
    httpPort: 0,
    srtPort: 0,
    rtsp: { port: 0 },
    retryInitialMs: 200,
    retryMaxMs: 1000,
    webrtc: { enabled: false },
  };
  const m = await MediaServer.start(configSchema.parse({ media: { ...base, ...media } }).media, silentLogger, {
    dataDir: dir,
  });
  servers.push(m);
  return m;
}

let m: MediaServer;

before(async () => {
  if (!hasFfmpeg) return;
  m = await start({
    paths: { "abr/*": { publish: "any", read: "signed", abr: LADDER }, "plain/*": { publish: "any" } },
  });
});

after(async () => {
  await Promise.all(servers.map((s) => s.close()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** testsrc2 at 854x480, 25 fps, a keyframe each second, AAC: the ladder's source. */
function publish480(url: string, seconds: number): { proc: ChildProcess; exit: Promise<number | null> } {
  const proc = spawn(
    "ffmpeg",
    [
      ...["-hide_banner", "-nostdin", "-loglevel", "error", "-re"],
      ...["-f", "lavfi", "-i", "testsrc2=size=854x480:rate=25", "-f", "lavfi", "-i", "sine"],
      ...["-t", String(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac"],
      ...["-f", "flv", url],
    ],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  return { proc, exit: new Promise((r) => proc.once("close", r)) };
}

/** ffprobe's streams of a URL: `video:h264:360`, `audio:aac`. */
async function probeStreams(url: string): Promise<string[]> {
  const { streams } = await ffprobe(url, "stream=codec_type,codec_name,height");
  return streams.map((s) => [s.codec_type, s.codec_name, s.height].filter((x) => x !== undefined).join(":")).sort();
}

async function status(srv: MediaServer, path: string): Promise<StreamStatus | undefined> {
  const r = await fetch(`${srv.httpUrl}/api/streams/${path}`);
  return r.ok ? ((await r.json()) as StreamStatus) : undefined;
}

const renditionStates = (s: StreamStatus | undefined) => s?.abr?.renditions.map((r) => `${r.name}:${r.state}`);
const RUNNING = "720p:skipped,360p:running,240p:running";

test("a 2-rung ladder on a 480p source: master playlist, renditions at their heights, restart", opts, async () => {
  const pub = publish480(`${m.rtmpUrl}/abr/cam`, 24);
  const http = m.httpUrl;
  const sig = m.auth.signer.query("abr/cam", Math.floor(Date.now() / 1000) + 600);
  try {
    const up = await until("both renditions to run", async () => {
      const s = await status(m, "abr/cam");
      return renditionStates(s)?.join() === RUNNING ? s : undefined;
    });
    const abr = up.abr;
    assert.ok(abr?.encoder?.ok, "an encoder was found");
    const chosen = abr.encoder.tried.findIndex((t) => t.ok);
    assert.equal(abr.encoder.tried[chosen]?.kind, abr.encoder.kind);
    for (const t of abr.encoder.tried.slice(0, chosen)) assert.ok(t.reason, `why not ${t.kind}`);
    assert.equal(abr.renditions[0]?.lastError, "above the source's 480p");
    assert.equal(up.urls.master, `${http}/abr/cam/master.m3u8`);
    assert.equal(up.urls.masterDash, `${http}/abr/cam/master.mpd`);

    // The source is read signed; its renditions are read as the source: one signature covers all of them.
    assert.equal((await fetch(`${http}/abr/cam/master.m3u8`)).status, 401);
    assert.equal((await fetch(`${http}/abr/cam/360p/stream.m3u8`)).status, 401);
    const masterUrl = `${http}/abr/cam/master.m3u8?${sig}`;
    const res = await fetch(masterUrl);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/vnd.apple.mpegurl");
    const parser = new Parser();
    parser.push(await res.text());
    parser.end();
    const variants = parser.manifest.playlists ?? [];
    assert.deepEqual(
      variants.map((v) => [v.uri.split("?")[0], v.attributes.RESOLUTION, v.attributes["FRAME-RATE"]]),
      [
        ["stream.m3u8", { width: 854, height: 480 }, 25],
        ["360p/stream.m3u8", { width: 640, height: 360 }, 25],
        ["240p/stream.m3u8", { width: 428, height: 240 }, 15],
      ],
    );
    for (const v of variants) {
      assert.match(v.attributes.CODECS ?? "", /^avc1\.[0-9a-f]{6},mp4a\.40\.2$/);
      assert.ok(v.uri.includes("sig="), "the signature travels into the variant URIs");
    }
    assert.ok((variants[1]?.attributes.BANDWIDTH ?? 0) >= 500_000, "BANDWIDTH covers the rung's video bitrate");
    assert.ok((variants[2]?.attributes.BANDWIDTH ?? 0) >= 250_000 + 64_000);

    // Each rendition is a stream path of its own: ffprobe plays its HLS at the rung's height.
    for (const [i, height] of [
      [1, 360],
      [2, 240],
    ] as const) {
      const url = new URL(variants[i]?.uri ?? "", masterUrl).href;
      assert.deepEqual(await probeStreams(url), ["audio:aac", `video:h264:${height}`], url);
    }
    const mpd = await fetch(`${http}/abr/cam/240p/index.mpd?${sig}`);
    assert.equal(mpd.status, 200, "each rendition has its own DASH manifest");
    assert.match(await mpd.text(), /height="240"/);

    // The player page offers the master playlist to hls.js; a path without a ladder keeps index.m3u8.
    assert.match(
      await (await fetch(`${http}/abr/cam/?${sig}`)).text(),
      /data-hls="master\.m3u8" data-dash="master\.mpd"/,
    );
    assert.match(await (await fetch(`${http}/plain/x/`)).text(), /data-hls="index\.m3u8"/);

    // The transcoder dying (here: killed) is retried; the source never notices.
    const segmentsBefore = (await status(m, "abr/cam"))?.segments ?? 0;
    const pid = m.abr.get("abr/cam")?.pid;
    assert.ok(pid, "the transcoder runs");
    process.kill(pid, "SIGKILL");
    const failed = await until("the failure to show", async () => {
      const s = await status(m, "abr/cam");
      return (s?.abr?.restarts ?? 0) >= 1 ? s : undefined;
    });
    assert.ok(failed.live, "the source is still live");
    await until("the renditions to run again", async () => {
      const s = await status(m, "abr/cam");
      return renditionStates(s)?.join() === RUNNING && m.abr.get("abr/cam")?.pid;
    });
    assert.notEqual(m.abr.get("abr/cam")?.pid, pid);
    const restarted = await status(m, "abr/cam");
    assert.equal(restarted?.abr?.renditions[1]?.lastError, "ffmpeg was killed while the source was live");
    await until("the source's segments to keep coming", async () => {
      const s = await status(m, "abr/cam");
      return (s?.segments ?? 0) > segmentsBefore || (s && !s.live && (s.segments ?? 0) > 0);
    });
    const url = new URL(`360p/stream.m3u8?${sig}`, masterUrl).href;
    assert.deepEqual(await probeStreams(url), ["audio:aac", "video:h264:360"], "the restarted rendition plays");

    assert.equal(await pub.exit, 0);
    const ended = await until("the ladder to stop with its source", async () => {
      const s = await status(m, "abr/cam");
      return renditionStates(s)?.join() === "720p:skipped,360p:stopped,240p:stopped" ? s : undefined;
    });
    assert.equal(ended.live, false);
    await until("the renditions' streams to end", async () => !m.hub.get("abr/cam/360p") && !m.hub.get("abr/cam/240p"));

    // The next publisher gets the ladder again, planned for its own height (320x240: only 240p runs).
    const next = publish(`${m.rtmpUrl}/abr/cam`, 5);
    const nextUp = await until("the ladder to start for the next publisher", async () => {
      const s = await status(m, "abr/cam");
      return renditionStates(s)?.join() === "720p:skipped,360p:skipped,240p:running" ? s : undefined;
    });
    assert.equal(nextUp.abr?.renditions[1]?.lastError, "above the source's 240p");
    assert.equal(nextUp.abr?.restarts, 0, "a new publisher, a new ladder");
    assert.equal(await next.exit, 0);
  } finally {
    pub.proc.kill("SIGKILL");
  }
});

test(
  "the player page loads the master playlist; hls.js reads its levels and plays a rendition",
  browserOpts,
  async () => {
    const pub = publish480(`${m.rtmpUrl}/abr/web`, 60);
    const sig = m.auth.signer.query("abr/web", Math.floor(Date.now() / 1000) + 600);
    const browser = await launchChromium({
      viewport: { width: 640, height: 480 },
      args: ["--autoplay-policy=no-user-gesture-required"],
    });
    const { page } = browser;
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    const requested: string[] = [];
    page.on("request", (r) => requested.push(new URL(r.url()).pathname));
    try {
      await until(
        "both renditions to run",
        async () => renditionStates(await status(m, "abr/web"))?.join() === RUNNING,
      );
      await page.goto(`${m.httpUrl}/abr/web/?${sig}`);
      await page.locator('main[data-playing="hls"]').waitFor({ timeout: 45000 });
      assert.ok(requested.includes("/abr/web/master.m3u8"), "the page's hls.js loaded the master playlist");
      // A second hls.js on the page, pinned to the 240p level: its fragments must come from the rendition's path.
      const got = await page.evaluate(async (src) => {
        type Level = { height: number };
        type Data = { levels: Level[]; frag: { level: number; url: string }; part?: { url: string } };
        const Hls = (window as unknown as { Hls: any }).Hls;
        const hls = new Hls();
        const video = document.createElement("video");
        video.muted = true;
        document.body.append(video);
        const wait = <T>(event: string, pick: (d: Data) => T | undefined) =>
          new Promise<T>((resolve, reject) => {
            setTimeout(() => reject(new Error(`no ${event} in 30 s`)), 30000);
            hls.on(event, (_e: unknown, d: Data) => {
              const v = pick(d);
              if (v !== undefined) resolve(v);
            });
          });
        const parsed = wait(Hls.Events.MANIFEST_PARSED, (d) => d.levels.map((l) => l.height));
        hls.loadSource(src);
        hls.attachMedia(video);
        const levels = await parsed;
        const i = (hls.levels as Level[]).findIndex((l) => l.height === 240);
        const buffered = wait(Hls.Events.FRAG_BUFFERED, (d) =>
          // Near the live edge LL-HLS loads parts: the segment of a part has no URL of its own yet.
          d.frag.level === i ? d.part?.url || d.frag.url : undefined,
        );
        hls.currentLevel = i;
        const url = await buffered;
        hls.destroy();
        return { levels, url };
      }, `${m.httpUrl}/abr/web/master.m3u8?${sig}`);
      assert.deepEqual(
        [...got.levels].sort((a, b) => a - b),
        [240, 360, 480],
      );
      assert.match(got.url, /\/abr\/web\/240p\/(?:seg|part)\d+\.m4s\?exp=/);
      assert.deepEqual(errors, []);
    } finally {
      await browser.context.close().catch(() => {});
      rmSync(browser.profile, { recursive: true, force: true });
      pub.proc.kill("SIGKILL");
    }
  },
);

test("bad ladder config is refused with messages naming the key", () => {
  const bad = (abr: unknown, extra: Record<string, unknown> = {}) =>
    validateConfig({ media: { paths: { "live/*": { abr } }, ...extra } }).issues.map((i) => i.message);
  assert.deepEqual(bad([{ name: "720p", height: 721, videoBitrate: "2M" }]), [
    "'media.paths.live/*.abr.0.height' must be even (H.264 4:2:0 needs even dimensions)",
  ]);
  assert.deepEqual(bad([{ name: "a/b", height: 720, videoBitrate: "fast" }]), [
    "'media.paths.live/*.abr.0.name' must be one path segment of letters, digits, _ or - (e.g. 720p)",
    `'media.paths.live/*.abr.0.videoBitrate' must be a bitrate like "2500k", "2.5M" or "800000"`,
  ]);
  const dup = { name: "hd", height: 720, videoBitrate: "2M" };
  assert.deepEqual(bad([dup, dup]), ["'media.paths.live/*.abr.1.name' 'hd' is used twice"]);
  assert.match(bad([{ name: "hd", height: 720 }])[0] ?? "", /^'media\.paths\.live\/\*\.abr\.0\.videoBitrate' /);
  assert.deepEqual(
    validateConfig({ media: { paths: { x: { abr: [{ ...dup, bitrate: "1M" }] } } } }).issues.map((i) => i.key),
    ["media.paths.x.abr.0.bitrate"],
  );
  assert.match(bad([], { encoder: "cuda" })[0] ?? "", /^'media\.encoder' .*"auto"/);
  assert.deepEqual(bad([]), [], "an empty ladder is remux only");
});

test("an unusable encoder fails the ladder with a clear status; the source plays as before", opts, async (t) => {
  if ((await detectEncoder("nvenc", { ffmpegPath: "ffmpeg" })).ok)
    return t.skip("NVENC works on this machine: forcing it cannot fail here");
  const hw = await start({
    encoder: "nvenc",
    paths: { "hw/*": { publish: "any", abr: [{ name: "120p", height: 120, videoBitrate: "100k" }] } },
  });
  const pub = publish(`${hw.rtmpUrl}/hw/cam`, 8);
  try {
    const s = await until("the ladder to fail", async () => {
      const x = await status(hw, "hw/cam");
      return x?.abr?.renditions[0]?.state === "failed" ? x : undefined;
    });
    assert.equal(s.abr?.encoder?.ok, false);
    assert.equal(s.abr?.encoder?.kind, "nvenc");
    assert.match(
      s.abr?.renditions[0]?.lastError ?? "",
      /^media\.encoder is nvenc but h264_nvenc is not usable here: \S/,
    );
    assert.ok(s.live);
    assert.deepEqual(await probeStreams(`${hw.httpUrl}/hw/cam/index.m3u8`), ["audio:aac", "video:h264:240"]);
    const master = await (await fetch(`${hw.httpUrl}/hw/cam/master.m3u8`)).text();
    assert.deepEqual(
      master.split("\n").filter((l) => l && !l.startsWith("#")),
      ["stream.m3u8"],
      "only the source is listed",
    );
    assert.equal((await fetch(`${hw.httpUrl}/hw/cam/120p/stream.m3u8`)).status, 404);
    assert.equal(await pub.exit, 0);
  } finally {
    pub.proc.kill("SIGKILL");
  }
});
