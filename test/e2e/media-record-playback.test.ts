/**
 * Playback of recordings: a real ffmpeg publish (testsrc2 + sine, H.264 + AAC over RTMP, a keyframe a second) is
 * recorded in 2-second files that go into the content-addressed store; `/_ami/playback/list` shows one span, and a
 * range that crosses file boundaries, fetched over HTTP (`get`) and with the `stream recordings get` op, is one MP4
 * that ffprobe measures at the asked duration (within a GOP) and ffmpeg decodes without an error; its HLS VOD
 * playlist plays in ffmpeg. Bad parameters are a 400, nothing recorded a 404, and a signed path's recordings are
 * refused without its signature (401), with a wrong one (403), and served with it or the control token.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { after, before, test } from "node:test";
import { testParams } from "../../src/cas/conformance.ts";
import { FsCasStore } from "../../src/cas/fs-backend.ts";
import { configSchema } from "../../src/config.ts";
import { makeContext } from "../../src/control/context.ts";
import { silentLogger } from "../../src/core/logger.ts";
import type { OpContext } from "../../src/core/ops.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { recordingsGet, recordingsList } from "../../src/media/ops/recordings.ts";
import { launchChromium } from "./helpers/browser.ts";
import { ffprobe, publish, runTool, until } from "./helpers/media-tools.ts";

const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
const opts = { skip: hasFfmpeg ? false : "ffmpeg is not installed" };
const dir = mkdtempSync(join(tmpdir(), "ami-media-playback-"));
const TOKEN = "playback-test-control-token";
/** The publisher's GOP (ffmpeg -g 25 at 25 fps). */
const GOP_S = 1;
let m: MediaServer;
let ctx: OpContext;
let base: string;

before(async () => {
  if (!hasFfmpeg) return;
  const cas = new FsCasStore({ root: join(dir, "cas"), params: testParams });
  const media = {
    rtmpPort: 0,
    httpPort: 0,
    srtPort: 0,
    rtsp: { port: 0 },
    endGraceSeconds: 0,
    recordSegmentSeconds: 2,
    recordPath: join(dir, "rec"),
    paths: { "private/*": { publish: "any", read: "signed" } },
  };
  const dataDir = join(dir, "data");
  m = await MediaServer.start(configSchema.parse({ media }).media, silentLogger, { cas, dataDir, apiToken: TOKEN });
  base = `${m.httpUrl}/_ami/playback`;
  const config = configSchema.parse({
    home: dir,
    control: { token: TOKEN },
    media: { httpPort: Number(new URL(m.httpUrl).port) },
  });
  ctx = makeContext({ config, configPath: undefined, log: silentLogger });
});

after(async () => {
  await m?.close();
  rmSync(dir, { recursive: true, force: true });
});

const seconds = (iso: string) => Date.parse(iso) / 1000;
const rfc = (s: number) => new Date(Math.round(s * 1000)).toISOString();

/** ffmpeg decodes all of `url` to nothing: exit code and what it reported. */
async function decode(url: string): Promise<{ code: number | null; err: string }> {
  const r = await runTool("ffmpeg", ["-hide_banner", "-nostdin", "-v", "error", "-i", url, "-f", "null", "-"]);
  return { code: r.code, err: r.err.trim() };
}

async function fetchTo(url: string, file: string, init?: RequestInit): Promise<Response> {
  const res = await fetch(url, init);
  assert.equal(res.status, 200, `${url}: ${res.status} ${res.ok ? "" : await res.text()}`);
  await pipeline(Readable.fromWeb(res.body as never), createWriteStream(file));
  return res;
}

let span: { start: string; duration: number; url: string };

test("a recorded publish is listed as one span across its files", opts, async () => {
  m.recordings.start("live/pb");
  m.recordings.start("private/pb");
  m.recordings.start("live/bf");
  const pubs = [
    publish(`${m.rtmpUrl}/live/pb`, 8),
    publish(`${m.rtmpUrl}/private/pb`, 4),
    // x264's defaults (B-frames): composition offsets, which a progressive MP4 carries in ctts and an edit list.
    publish(`${m.rtmpUrl}/live/bf`, 5, "flv", ["-c:v", "libx264", "-preset", "veryfast", "-g", "25", "-bf", "2"]),
  ];
  await Promise.all(pubs.map((p) => p.exit));
  await until("the recordings to finish their files", async () =>
    ["live/pb", "private/pb", "live/bf"].every((p) => m.recordings.get(p)?.state === "waiting"),
  );
  const files = m.recordings.get("live/pb")!;
  assert.ok(files.files >= 3, `${files.files} recorded files`);
  assert.ok(files.stored >= 1, "some files are read back from the content-addressed store");

  const res = await fetch(`${base}/list?path=live/pb`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("access-control-allow-origin"), "*", "players on other origins may read it");
  const spans = (await res.json()) as (typeof span)[];
  assert.equal(spans.length, 1, JSON.stringify(spans));
  span = spans[0]!;
  assert.ok(Math.abs(span.duration - 8) <= 1.5, `span of ${span.duration} s for an 8 s publish`);
  assert.ok(Math.abs(seconds(span.start) - (Date.now() / 1000 - span.duration)) < 30, `starts ${span.start}`);
  assert.match(span.url, /\/_ami\/playback\/get\?path=live%2Fpb&start=/);

  // A window clips the span; the op lists the same.
  const from = seconds(span.start) + 2;
  const clipped = (await (await fetch(`${base}/list?path=live/pb&start=${rfc(from)}&end=${rfc(from + 3)}`)).json()) as {
    duration: number;
  }[];
  assert.equal(clipped.length, 1);
  assert.ok(Math.abs(clipped[0]!.duration - 3) < 0.01, `clipped to ${clipped[0]!.duration} s`);
  const listed = await recordingsList.run(recordingsList.input.parse({ path: "live/pb" }), ctx);
  assert.deepEqual(
    listed.spans.map((s) => s.start),
    [span.start],
  );
});

test("a range across file boundaries plays as one MP4 over HTTP and from the op", opts, async () => {
  const start = rfc(seconds(span.start) + 1.5);
  const duration = 4;
  const url = `${base}/get?path=live/pb&start=${start}&duration=${duration}`;
  const file = join(dir, "range.mp4");
  const res = await fetchTo(url, file);
  assert.equal(res.headers.get("content-type"), "video/mp4");
  const viaOp = join(dir, "range-op.mp4");
  const got = await recordingsGet.run(recordingsGet.input.parse({ path: "live/pb", start, duration, out: viaOp }), ctx);
  assert.equal(got.bytes, Number(res.headers.get("content-length")));

  for (const f of [file, viaOp]) {
    const p = await ffprobe(f, "format=duration:stream=codec_name,codec_type,start_time");
    assert.deepEqual(p.streams.map((s) => `${s.codec_type}:${s.codec_name}`).sort(), ["audio:aac", "video:h264"]);
    const d = Number(p.format.duration);
    // From the keyframe at or before the start (less than a GOP early) to the end.
    assert.ok(d >= duration - 0.1 && d <= duration + GOP_S + 0.1, `${f}: ${d} s for a ${duration} s range`);
    const starts = (p.streams as unknown as { start_time: string }[]).map((s) => Number(s.start_time));
    assert.ok(
      starts.every((s) => s < 0.1),
      `timestamps start at 0: ${starts}`,
    );
    const dec = await decode(f);
    assert.equal(dec.code, 0, dec.err);
    assert.equal(dec.err, "", `ffmpeg decodes ${f} without an error`);
  }
});

/** ffprobe's view of a progressive MP4: duration, video frames (from the tables and decoded), box order. */
async function probeMp4(target: string) {
  const p = await ffprobe(target, "format=duration:stream=codec_type,codec_name,nb_frames,nb_read_frames,start_time");
  const r = await runTool("ffprobe", [
    "-v",
    "error",
    "-count_frames",
    "-select_streams",
    "v",
    "-show_entries",
    "stream=nb_read_frames",
    "-of",
    "json",
    target,
  ]);
  const trace = await runTool("ffprobe", ["-v", "trace", "-i", target]);
  const boxes = [...trace.err.matchAll(/type:'(ftyp|moov|moof|mdat)'/g)].map((x) => x[1]);
  const streams = p.streams as unknown as {
    codec_type: string;
    codec_name: string;
    nb_frames: string;
    start_time: string;
  }[];
  return {
    duration: Number(p.format.duration),
    kinds: streams.map((s) => `${s.codec_type}:${s.codec_name}`).sort(),
    frames: Number(streams.find((s) => s.codec_type === "video")?.nb_frames),
    decoded: Number((JSON.parse(r.out) as { streams: { nb_read_frames: string }[] }).streams[0]?.nb_read_frames),
    starts: streams.map((s) => Number(s.start_time)),
    boxes: [...new Set(boxes)],
  };
}

test("format=mp4: a progressive MP4, moov before mdat, that ffprobe measures and ffmpeg decodes", opts, async () => {
  const start = rfc(seconds(span.start) + 1.5);
  const duration = 4;
  const url = `${base}/get?path=live/pb&start=${start}&duration=${duration}&format=mp4`;
  const file = join(dir, "range-progressive.mp4");
  const res = await fetchTo(url, file);
  assert.equal(res.headers.get("content-type"), "video/mp4");
  const viaOp = join(dir, "range-progressive-op.mp4");
  const got = await recordingsGet.run(
    recordingsGet.input.parse({ path: "live/pb", start, duration, out: viaOp, format: "mp4" }),
    ctx,
  );
  assert.equal(got.bytes, Number(res.headers.get("content-length")));
  // The same range as fMP4: the same frames.
  const fragFile = join(dir, "range-fragmented.mp4");
  await fetchTo(`${base}/get?path=live/pb&start=${start}&duration=${duration}`, fragFile);
  const frag = await probeMp4(fragFile);
  for (const f of [file, viaOp, url]) {
    const p = await probeMp4(f);
    assert.deepEqual(p.kinds, ["audio:aac", "video:h264"]);
    assert.ok(p.duration >= duration - 0.1 && p.duration <= duration + GOP_S + 0.1, `${f}: ${p.duration} s`);
    assert.ok(Math.abs(p.duration - frag.duration) < 0.1, `mp4 ${p.duration} s, fmp4 ${frag.duration} s`);
    // 25 fps: the sample tables list every frame of the range, each decodes.
    assert.ok(Math.abs(p.frames - p.duration * 25) <= 2, `${p.frames} frames in ${p.duration} s`);
    assert.equal(p.decoded, p.frames, "every listed frame decodes");
    assert.equal(p.decoded, frag.decoded, "as many frames as the fMP4 of the range");
    assert.ok(
      p.starts.every((s) => s < 0.1),
      `timestamps start at 0: ${p.starts}`,
    );
    assert.deepEqual(p.boxes, ["ftyp", "moov", "mdat"], "faststart: the moov before the mdat, no fragments");
    const dec = await decode(f);
    assert.equal(dec.code, 0, dec.err);
    assert.equal(dec.err, "", `ffmpeg decodes ${f} without an error`);
  }

  // Seekable: the length is known up front, so byte ranges are served (206, 416 past the end, HEAD).
  const whole = readFileSync(file);
  const head = await fetch(url, { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get("accept-ranges"), "bytes");
  assert.equal(Number(head.headers.get("content-length")), whole.length);
  const mid = Math.floor(whole.length / 2);
  for (const [range, from, to] of [
    ["bytes=0-99", 0, 99],
    [`bytes=${mid}-${mid + 70_000}`, mid, mid + 70_000],
    [`bytes=${mid}-`, mid, whole.length - 1],
    ["bytes=-1000", whole.length - 1000, whole.length - 1],
  ] as const) {
    const r = await fetch(url, { headers: { range } });
    assert.equal(r.status, 206, range);
    assert.equal(r.headers.get("content-range"), `bytes ${from}-${to}/${whole.length}`);
    assert.ok(Buffer.from(await r.arrayBuffer()).equals(whole.subarray(from, to + 1)), `${range}: the file's bytes`);
  }
  const past = await fetch(url, { headers: { range: `bytes=${whole.length}-` } });
  assert.equal(past.status, 416);
  assert.equal(past.headers.get("content-range"), `bytes */${whole.length}`);
  const ranged = await fetch(url, { method: "HEAD", headers: { range: "bytes=10-19" } });
  assert.equal(ranged.status, 206);
  assert.equal(ranged.headers.get("content-length"), "10");
  // ffmpeg seeks over HTTP: -ss near the end reads the moov, then only the bytes from there on.
  const spanUrl = `${base}/get?path=live/pb&start=${span.start}&duration=${span.duration}&format=mp4`;
  const total = Number((await fetch(spanUrl, { method: "HEAD" })).headers.get("content-length"));
  const seek = await runTool("ffmpeg", [
    ...["-hide_banner", "-nostdin", "-v", "verbose", "-ss", String(Math.floor(span.duration) - 2), "-i", spanUrl],
    ...["-map", "0:v", "-f", "null", "-"],
  ]);
  assert.equal(seek.code, 0, seek.err.slice(-500));
  const stats = /Statistics: (\d+) bytes read, (\d+) seeks/.exec(seek.err);
  assert.ok(stats, seek.err.slice(-500));
  assert.ok(Number(stats[2]) >= 1, "ffmpeg seeked");
  assert.ok(Number(stats[1]) < total / 2, `read ${stats[1]} of ${total} bytes to play the last 2 s`);
  const decodedFrames = Number([...seek.err.matchAll(/frame=\s*(\d+)/g)].at(-1)?.[1] ?? 0);
  assert.ok(decodedFrames >= 25 && decodedFrames <= 4 * 25, `${decodedFrames} frames after the seek`);

  // B-frames (x264 defaults): composition offsets and the edit list bring presentation to 0, every frame decodes.
  const bf = (await (await fetch(`${base}/list?path=live/bf`)).json()) as (typeof span)[];
  const bfUrl = `${base}/get?path=live/bf&start=${bf[0]!.start}&duration=${bf[0]!.duration}&format=mp4`;
  const p = await probeMp4(bfUrl);
  assert.ok(Math.abs(p.duration - bf[0]!.duration) < 0.2, `${p.duration} s of a ${bf[0]!.duration} s span`);
  assert.equal(p.decoded, p.frames);
  assert.ok(Math.abs(p.frames - bf[0]!.duration * 25) <= 2, `${p.frames} frames`);
  // Video (listed first) starts at 0: the edit list skips x264's B-frame delay (2 frames, 0.08 s); audio where it was
  // recorded, as in the fMP4 of the same span.
  const bfFrag = join(dir, "bf-fragmented.mp4");
  await fetchTo(bfUrl.replace("&format=mp4", ""), bfFrag);
  const fragStarts = (await probeMp4(bfFrag)).starts;
  assert.equal(p.starts[0], 0, `video starts at ${p.starts[0]}`);
  assert.ok(Math.abs(p.starts[1]! - fragStarts[1]!) < 0.002, `audio at ${p.starts[1]} s, in the fMP4 ${fragStarts[1]}`);
  const dec = await decode(bfUrl);
  assert.equal(dec.code, 0, dec.err);
  assert.equal(dec.err, "", "ffmpeg decodes the B-frame range without an error");
});

test("format=mp4 plays in Chromium's <video> to its end", opts, async () => {
  const url = `${base}/get?path=live/bf&start=${span.start}&duration=60&format=mp4`;
  const { profile, context, page } = await launchChromium({
    viewport: { width: 640, height: 480 },
    args: ["--autoplay-policy=no-user-gesture-required"],
  });
  try {
    await page.setContent('<video muted autoplay playsinline width="320"></video>');
    await page.evaluate((src) => {
      const v = document.querySelector("video") as HTMLVideoElement;
      const w = window as unknown as { errors: string[] };
      w.errors = [];
      v.onerror = () => w.errors.push(`${v.error?.code} ${v.error?.message}`);
      v.src = src;
    }, url);
    const state = () =>
      page.evaluate(() => {
        const v = document.querySelector("video") as HTMLVideoElement;
        return {
          ended: v.ended,
          time: v.currentTime,
          duration: v.duration,
          width: v.videoWidth,
          frames: v.getVideoPlaybackQuality().totalVideoFrames,
          errors: (window as unknown as { errors: string[] }).errors,
        };
      });
    const end = await until(
      "the <video> to play to its end",
      async () => {
        const s = await state();
        assert.deepEqual(s.errors, []);
        return s.ended ? s : undefined;
      },
      45_000,
    );
    assert.equal(end.width, 320);
    assert.ok(Math.abs(end.time - end.duration) < 0.1, `ended at ${end.time} of ${end.duration} s`);
    // 25 fps: nearly every frame of the ~5 s recording was decoded.
    assert.ok(end.frames >= end.duration * 25 - 5, `${end.frames} frames decoded in ${end.duration} s`);

    // Seeking before the file is loaded: Chromium asks for byte ranges (it treats an answer without them as a
    // stream it cannot seek in), so the whole duration is seekable at once and a seek lands where asked.
    const seek = await page.evaluate(async (src) => {
      const v = document.createElement("video");
      v.muted = true;
      v.preload = "metadata";
      document.body.append(v);
      const event = (name: string) =>
        new Promise((r, j) => {
          v.addEventListener(name, r, { once: true });
          v.addEventListener("error", () => j(new Error(`${v.error?.code} ${v.error?.message}`)), { once: true });
          setTimeout(() => j(new Error(`no ${name} within 15 s`)), 15_000);
        });
      const meta = event("loadedmetadata");
      v.src = src;
      await meta;
      const seekable = v.seekable.length > 0 ? v.seekable.end(v.seekable.length - 1) : 0;
      const target = v.duration - 1;
      const seeked = event("seeked");
      v.currentTime = target;
      await seeked;
      return { seekable, duration: v.duration, target, time: v.currentTime, ready: v.readyState };
    }, url);
    assert.ok(Math.abs(seek.seekable - seek.duration) < 0.1, `seekable to ${seek.seekable} of ${seek.duration} s`);
    assert.ok(Math.abs(seek.time - seek.target) < 0.1, `seeked to ${seek.time}, asked ${seek.target}`);
    assert.ok(seek.ready >= 2, "a frame at the new position");
  } finally {
    await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
});

test("the HLS VOD playlist of a range plays in ffmpeg", opts, async () => {
  const start = rfc(seconds(span.start) + 0.5);
  const url = `${base}/index.m3u8?path=live/pb&start=${encodeURIComponent(start)}&duration=6`;
  const text = await (await fetch(url)).text();
  assert.match(text, /#EXT-X-PLAYLIST-TYPE:VOD/);
  assert.match(text, /#EXT-X-ENDLIST/);
  assert.match(text, /#EXT-X-MAP:URI="init\.mp4\?/);
  const segs = text.match(/^segment\.m4s\?.*$/gm) ?? [];
  assert.ok(segs.length >= 2, text);
  const p = await ffprobe(url);
  const d = Number(p.format.duration);
  assert.ok(d >= 6 - 0.1 && d <= 6 + GOP_S + 0.1, `HLS: ${d} s for a 6 s range`);
  const dec = await decode(url);
  assert.equal(dec.code, 0, dec.err);
  assert.equal(dec.err, "", "ffmpeg plays the VOD playlist without an error");
});

test("bad parameters are a 400, nothing recorded a 404", opts, async () => {
  const start = encodeURIComponent(span.start);
  const cases: [string, number, RegExp][] = [
    ["get?path=live/pb&duration=4", 400, /'start' is required/],
    ["get?path=live/pb&start=yesterday&duration=4", 400, /RFC 3339/],
    [`get?path=live/pb&start=${start}&duration=-1`, 400, /positive number/],
    [`get?path=live/pb&start=${start}&duration=abc`, 400, /positive number/],
    [`get?path=live/pb&start=${start}`, 400, /'duration' is required/],
    [`get?path=live/pb&start=${start}&duration=999999`, 400, /at most/],
    [`get?path=live/pb&start=${start}&duration=4&format=webm`, 400, /unknown format 'webm' \(fmp4, mp4\)/],
    [`get?path=live/pb&start=${start}&duration=4&format=mp4&n=1`, 200, /./],
    [`get?path=../etc&start=${start}&duration=4`, 400, /invalid stream path/],
    [`get?start=${start}&duration=4`, 400, /'path' is required/],
    [`get?path=%ff%fe&start=${start}&duration=4`, 400, /invalid stream path/],
    [`get?path=live/pb&start=${start}%00&duration=4`, 400, /RFC 3339/],
    [`list?path=live/pb&start=${start}&end=${start}`, 400, /after/],
    [`segment.m4s?path=live/pb&start=${start}&duration=4`, 400, /'n'/],
    [`get?path=live/none&start=${start}&duration=4`, 404, /nothing recorded/],
    [`get?path=live/pb&start=2020-01-01T00:00:00Z&duration=60`, 404, /nothing recorded/],
    [`get?path=live/pb&start=2020-01-01T00:00:00Z&duration=60&format=mp4`, 404, /nothing recorded/],
    [`get?path=live/pb&start=${start}&duration=-4&format=mp4`, 400, /positive number/],
    [`list?path=live/none`, 404, /nothing recorded/],
    [`segment.m4s?path=live/pb&start=${start}&duration=4&n=99`, 404, /no segment/],
    [`nope?path=live/pb`, 404, /no playback endpoint/],
  ];
  for (const [q, status, error] of cases) {
    const res = await fetch(`${base}/${q}`);
    if (status === 200) {
      assert.equal(res.status, 200, q);
      await res.body?.cancel();
      continue;
    }
    const body = (await res.json()) as { error: string };
    assert.equal(res.status, status, `${q}: ${body.error}`);
    assert.match(body.error, error, q);
  }
  // A reader that goes away mid-answer (and one that never reads) costs nothing lasting: still serving.
  const ac = new AbortController();
  const res = await fetch(`${base}/get?path=live/pb&start=${start}&duration=8`, { signal: ac.signal });
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  await reader.read();
  ac.abort();
  await reader.read().catch(() => {});
  const stalled = await fetch(`${base}/get?path=live/pb&start=${start}&duration=8`);
  assert.equal(stalled.status, 200);
  assert.equal((await fetch(`${base}/list?path=live/pb`)).status, 200);
  await stalled.body?.cancel();
});

test("a signed path's recordings need its signature (or the control token)", opts, async () => {
  const listed = (await recordingsList.run(recordingsList.input.parse({ path: "private/pb" }), ctx)).spans;
  assert.equal(listed.length, 1, "the op (control token) lists it");
  const start = encodeURIComponent(listed[0]!.start);
  const q = `path=private/pb&start=${start}&duration=2`;
  for (const what of ["list?path=private/pb", `get?${q}`, `index.m3u8?${q}`, `init.mp4?${q}`]) {
    const none = await fetch(`${base}/${what}`);
    assert.equal(none.status, 401, `${what} without a signature`);
    const wrong = await fetch(`${base}/${what}&exp=9999999999&sig=forged`);
    assert.equal(wrong.status, 403, `${what} with a forged signature`);
    const other = await fetch(`${base}/${what}`, { headers: { authorization: "Bearer not-the-token" } });
    assert.equal(other.status, 401, `${what} with another bearer`);
  }
  const sig = m.auth.signer.query("private/pb", Math.floor(Date.now() / 1000) + 600);
  const file = join(dir, "private.mp4");
  await fetchTo(`${base}/get?${q}&${sig}`, file);
  const dec = await decode(file);
  assert.equal(dec.code, 0, dec.err);
  // The signed playlist's init and segment URLs carry the signature, so a player gets them too.
  const hls = `${base}/index.m3u8?${q}&${sig}`;
  assert.match(await (await fetch(hls)).text(), /segment\.m4s\?.*&sig=/);
  assert.equal((await decode(hls)).code, 0);
  const listSigned = (await (await fetch(`${base}/list?path=private/pb&${sig}`)).json()) as { url: string }[];
  assert.equal((await fetch(listSigned[0]!.url)).status, 200, "the listed URL carries the signature");
  const viaToken = await fetch(`${base}/get?${q}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(viaToken.status, 200);
  await viaToken.body?.cancel();
});
