/**
 * Enhanced RTMP: a publisher built on our RTMP protocol code sends H.265 ('hvc1' ExVideoTagHeader tags) and Opus
 * (ExHeader audio tags) made from real libx265 / libopus output; the server's in-process CMAF muxer packages
 * them and ffprobe reads hevc + opus from the HLS and DASH outputs; the playlists name the codecs. HTTP-FLV
 * passes the enhanced tags through as they came.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { after, before, test } from "node:test";
import { configSchema } from "../../src/config.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { AUDIO_PACKET, FOURCC_OPUS, parseExAudio } from "../../src/media/protocols/flv/ex-audio.ts";
import { FOURCC_HEVC, parseVideoTag } from "../../src/media/protocols/flv/ex-video.ts";
import { TAG_AUDIO, TAG_VIDEO } from "../../src/media/protocols/flv/tag.ts";
import { hevcTags, interleave, opusTags, type Tag } from "./helpers/ertmp-source.ts";
import { ffprobe, kinds, readFlv, until } from "./helpers/media-tools.ts";
import { publishTags } from "./helpers/rtmp-publisher.ts";

const hasX265 = spawnSync("ffmpeg", ["-hide_banner", "-encoders"], { encoding: "utf8" }).stdout?.includes("libx265");
const opts = { skip: hasX265 ? false : "ffmpeg with libx265 is not installed" };
let m: MediaServer;

before(async () => {
  if (!hasX265) return;
  const c = configSchema.parse({
    media: { enabled: true, rtmpPort: 0, httpPort: 0, srtPort: 0, rtsp: { port: 0 }, endGraceSeconds: 0 },
  }).media;
  m = await MediaServer.start(c, silentLogger);
});

after(() => m?.close());

const publish = (path: string, tags: Tag[]) => publishTags(`${m.rtmpUrl}/${path}`, tags);

test("H.265 + Opus over enhanced RTMP: HLS and DASH carry hevc + opus, playlists say hvc1 and opus", opts, async () => {
  const p = await publish("live/hevc", interleave(hevcTags(4), opusTags(4)));
  const master = await until("the multivariant playlist", async () => {
    const r = await fetch(`${m.httpUrl}/live/hevc/index.m3u8`);
    return r.status === 200 ? r.text() : undefined;
  });
  assert.match(master, /CODECS="hvc1\.1\.6\.L\d+(\.[0-9A-F]+)*,opus"/);
  assert.match(master, /RESOLUTION=320x240/);
  await p.close();
  await until("the stream to end", async () => {
    const pl = await (await fetch(`${m.httpUrl}/live/hevc/stream.m3u8`)).text();
    return pl.includes("#EXT-X-ENDLIST");
  });
  for (const url of [`${m.httpUrl}/live/hevc/stream.m3u8`, `${m.httpUrl}/live/hevc/index.mpd`]) {
    const probe = await ffprobe(url);
    assert.deepEqual(kinds(probe), ["audio:opus", "video:hevc"], url);
    const d = Number(probe.format.duration);
    assert.ok(Math.abs(d - 4) <= 1.2, `${url}: duration ${d}`);
  }
  const mpd = await (await fetch(`${m.httpUrl}/live/hevc/index.mpd`)).text();
  // One track per Representation: the HEVC and the Opus codecs in their own AdaptationSets.
  assert.match(mpd, /contentType="video"[\s\S]*codecs="hvc1\.1\.6\.L\d+[^",]*"/);
  assert.match(mpd, /contentType="audio"[\s\S]*codecs="opus"/);
});

test("HTTP-FLV carries the enhanced-RTMP tags as published: 'hvc1' video and 'Opus' audio", opts, async () => {
  const publishing = publish("live/hevc-flv", interleave(hevcTags(4), opusTags(4)));
  await until("the stream's headers", async () => {
    const s = m.hub.get("live/hevc-flv");
    return !!(s?.videoConfig && s.audioConfig);
  });
  const flv = readFlv(`${m.httpUrl}/live/hevc-flv.flv`);
  const p = await publishing;
  await until("HEVC frames over HTTP-FLV", async () => flv.tags.filter((t) => t.type === TAG_VIDEO).length > 20);
  flv.stop();
  await flv.done;
  await p.close();
  const video = flv.tags.filter((t) => t.type === TAG_VIDEO).map((t) => parseVideoTag(t.data));
  const audio = flv.tags.filter((t) => t.type === TAG_AUDIO).map((t) => parseExAudio(t.data));
  assert.equal(video[0]?.fourcc, FOURCC_HEVC);
  assert.equal(video[0]?.packet, "config", "the hvcC sequence start first");
  assert.ok(
    video.some((v) => v?.packet === "frame" && v.frameType === 1),
    "an H.265 keyframe",
  );
  assert.equal(audio[0]?.fourcc, FOURCC_OPUS);
  assert.equal(audio[0]?.packetType, AUDIO_PACKET.SequenceStart, "the OpusHead sequence start first");
});

test(
  "H.265 alone over enhanced RTMP: the segments decode (ffmpeg decodes every frame without error)",
  opts,
  async () => {
    const p = await publish("live/hevc-only", hevcTags(3));
    await p.close();
    await until("the stream to end", async () => {
      const pl = await (await fetch(`${m.httpUrl}/live/hevc-only/stream.m3u8`)).text();
      return pl.includes("#EXT-X-ENDLIST");
    });
    // Asynchronously: the server answers from this process's event loop.
    const dec = spawn("ffmpeg", ["-v", "error", "-i", `${m.httpUrl}/live/hevc-only/stream.m3u8`, "-f", "null", "-"]);
    let err = "";
    dec.stderr.on("data", (d) => {
      err += d;
    });
    assert.equal(await new Promise((r) => dec.once("close", r)), 0, err);
    assert.equal(err.trim(), "", "no decode errors");
    const probe = await ffprobe(`${m.httpUrl}/live/hevc-only/stream.m3u8`);
    assert.deepEqual(kinds(probe), ["video:hevc"]);
  },
);
