/**
 * The MPEG-TS HLS variant (`/<path>/ts.m3u8`) for legacy players: ffmpeg publishes H.264 + AAC over RTMP, then
 * ffprobe finds h264 + aac in it, and ffmpeg, GStreamer's playbin and VLC (as nobody) each play it for ~12 s at
 * once without errors. The path is `read: signed`, so every player reads signed URLs, the signature carried into
 * the playlist's segment URIs; unsigned and badly signed requests are refused like the fMP4 ones. The variant exists
 * only once it is requested, and its segments are the fMP4 segments' numbers.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, test } from "node:test";
import { configSchema } from "../../src/config.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { activeTsVariant } from "../../src/media/servers/http/hls-ts.ts";
import { ffprobe, gstPlayed, kinds, publish, runTool, until, vlcStats } from "./helpers/media-tools.ts";

const has = (cmd: string, ...args: string[]) => spawnSync(cmd, args).status === 0;
// VLC refuses to run as root, even for --version: look it up on PATH instead.
const ok = has("ffmpeg", "-version") && has("gst-launch-1.0", "--version") && has("sh", "-c", "command -v vlc");
const opts = { skip: ok ? false : "ffmpeg, gst-launch-1.0 or cvlc is not installed" };
const PATH = "signed/ts";
const PLAY_S = 12;
let m: MediaServer;
let pub: ReturnType<typeof publish> | undefined;

before(async () => {
  if (!ok) return;
  m = await MediaServer.start(
    configSchema.parse({
      media: {
        rtmpPort: 0,
        httpPort: 0,
        srtPort: 0,
        rtsp: { port: 0 },
        paths: { "signed/*": { publish: "any", read: "signed" } },
      },
    }).media,
    silentLogger,
  );
  pub = publish(`${m.rtmpUrl}/${PATH}`, 60);
  // Live: the (signed) fMP4 playlist lists a few segments.
  await until(
    "the stream to be live",
    async () => {
      const r = await fetch(`${m.httpUrl}/${PATH}/stream.m3u8?${sig()}`);
      return r.ok && ((await r.text()).match(/#EXTINF/g)?.length ?? 0) >= 3;
    },
    30_000,
  );
});

after(async () => {
  pub?.proc.kill("SIGKILL");
  await pub?.exit;
  await m?.close();
});

/** exp + sig for the path, valid for an hour. */
const sig = () => m.auth.signer.query(PATH, Math.floor(Date.now() / 1000) + 3600);
const url = () => `${m.httpUrl}/${PATH}/ts.m3u8?${sig()}`;

test("made on demand: no TS variant until requested; a version 3 playlist of the fMP4 segments", opts, async () => {
  const timeline = m.outputs.get(PATH)?.packager.timeline;
  assert.ok(timeline);
  assert.equal(activeTsVariant(timeline), undefined, "nobody asked for TS yet");
  const r = await fetch(url());
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type") ?? "", /mpegurl/);
  const text = await r.text();
  assert.match(text, /^#EXTM3U\n#EXT-X-VERSION:3\n/);
  assert.doesNotMatch(text, /EXT-X-PART|EXT-X-MAP|PRELOAD-HINT/);
  assert.ok(activeTsVariant(timeline), "made by the request");
  // Same segment numbers as the fMP4 playlist.
  const fmp4 = await (await fetch(`${m.httpUrl}/${PATH}/stream.m3u8?${sig()}`)).text();
  const seq = (t: string) => /#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(t)?.[1];
  const tsSeq = seq(text);
  assert.ok(tsSeq !== undefined && Math.abs(Number(tsSeq) - Number(seq(fmp4))) <= 1);
  const first = text.split("\n").find((l) => l && !l.startsWith("#")) as string;
  assert.match(first, /^ts\d+\.ts\?exp=\d+&sig=/, "segment URIs carry the signature");
  const seg = await fetch(`${m.httpUrl}/${PATH}/${first}`);
  assert.equal(seg.status, 200);
  assert.equal(seg.headers.get("content-type"), "video/mp2t");
  const body = Buffer.from(await seg.arrayBuffer());
  assert.equal(body.length % 188, 0);
  assert.equal(body[0], 0x47);
  // The same read check as the fMP4 files: no signature 401, a bad one 403.
  const bare = `${m.httpUrl}/${PATH}/${first.split("?")[0]}`;
  assert.equal((await fetch(bare)).status, 401);
  assert.equal((await fetch(`${m.httpUrl}/${PATH}/ts.m3u8`)).status, 401);
  assert.equal((await fetch(url().replace(/sig=[^&]+/, "sig=AAAA"))).status, 403);
  // Bad names and gone segments are plain 404s.
  for (const bad of ["ts99999999.ts", "ts-1.ts", "tsx.ts", "ts.m3u8x"])
    assert.equal((await fetch(`${m.httpUrl}/${PATH}/${bad}?${sig()}`)).status, 404, bad);
  assert.equal((await fetch(`${m.httpUrl}/nope/ts.m3u8`)).status, 404);
});

test("ffprobe finds H.264 and AAC", opts, async () => {
  assert.deepEqual(kinds(await ffprobe(url())), ["audio:aac", "video:h264"]);
});

test("`stream status` names the MPEG-TS playlist (and the SRT read URL)", opts, () => {
  const s = m.statuses().find((x) => x.path === PATH);
  assert.equal(s?.urls.hlsTs, `${m.httpUrl}/${PATH}/ts.m3u8`);
  assert.equal(s?.urls.srt, `${m.srtUrl}?streamid=read:${PATH}`);
});

test(`ffmpeg, GStreamer and VLC each play it for ${PLAY_S} s without errors`, opts, async () => {
  const [ff, gst, v] = await Promise.all([
    // -re: read at the live rate; 10 s of media decoded.
    runTool("ffmpeg", ["-v", "error", "-re", "-i", url(), "-t", "10", "-f", "null", "-"]),
    gstPlayed("playbin", url(), PLAY_S + 4),
    vlcStats(url(), PLAY_S),
  ]);
  assert.equal(ff.code, 0, ff.err.slice(-400));
  assert.equal(ff.err.trim(), "", "ffmpeg decodes without an error");
  assert.deepEqual(gst.errors, []);
  assert.ok(gst.played >= 5, `GStreamer rendered ${gst.played.toFixed(2)} s`);
  assert.ok(v.displayed >= 25 * 5, `VLC displayed ${v.displayed} frames`);
  assert.ok(v.audioPlayed > 0, "VLC played audio");
  assert.ok(v.lost <= v.displayed / 20, `VLC lost ${v.lost} frames`);
});
