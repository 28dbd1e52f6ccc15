/**
 * Encoder detection: parsing `ffmpeg -encoders` (lines of this machine's ffmpeg 5.1, and its live output), the
 * choice between kinds, and the real detection here, which must say why each hardware kind was not taken.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { test } from "node:test";
import {
  cachedEncoder,
  choose,
  detectEncoder,
  type EncoderTry,
  firstError,
  parseEncoders,
  probeKind,
  renderNodes,
} from "./encoders.ts";

const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
const opts = { skip: hasFfmpeg ? false : "ffmpeg is not installed" };

/** Excerpt of `ffmpeg -hide_banner -encoders` from Debian's ffmpeg 5.1 on this machine. */
const SAMPLE = `Encoders:
 V..... = Video
 A..... = Audio
 S..... = Subtitle
 .F.... = Frame-level multithreading
 ..S... = Slice-level multithreading
 ...X.. = Codec is experimental
 ....B. = Supports draw_horiz_band
 .....D = Supports direct rendering method 1
 ------
 V....D a64multi             Multicolor charset for Commodore 64 (codec a64_multi)
 V....D libx264              libx264 H.264 / AVC / MPEG-4 AVC / MPEG-4 part 10 (codec h264)
 V....D h264_nvenc           NVIDIA NVENC H.264 encoder (codec h264)
 V..... h264_qsv             H.264 / AVC / MPEG-4 AVC / MPEG-4 part 10 (Intel Quick Sync Video acceleration) (codec h264)
 V....D h264_vaapi           H.264/AVC (VAAPI) (codec h264)
 A..... aac                  AAC (Advanced Audio Coding)
 S..... ass                  ASS (Advanced SubStation Alpha) subtitle
`;

test("parseEncoders reads the encoder table, not the legend", () => {
  const e = parseEncoders(SAMPLE);
  assert.deepEqual([...e.video.keys()], ["a64multi", "libx264", "h264_nvenc", "h264_qsv", "h264_vaapi"]);
  assert.deepEqual([...e.audio.keys()], ["aac"]);
  assert.equal(e.video.get("h264_vaapi"), "H.264/AVC (VAAPI) (codec h264)");
  assert.equal(parseEncoders("").video.size, 0);
  assert.equal(parseEncoders("garbage\n------\nnot a line").video.size, 0);
});

test("parseEncoders on this machine's live ffmpeg output", opts, () => {
  const out = spawnSync("ffmpeg", ["-hide_banner", "-encoders"], { encoding: "utf8" }).stdout;
  const e = parseEncoders(out);
  assert.ok(e.video.size > 50, `${e.video.size} video encoders`);
  assert.ok(e.video.has("libx264"), "Debian's ffmpeg has libx264");
  assert.ok(e.audio.has("aac"));
  assert.ok(!e.video.has("="), "legend lines are not encoders");
});

test("firstError keeps ffmpeg's specific line without the [name @ 0x..] prefix", () => {
  const nvenc =
    "[h264_nvenc @ 0x55f053947440] Cannot load libcuda.so.1\nError initializing output stream 0:0 -- Error while opening encoder";
  assert.equal(firstError(nvenc), "Cannot load libcuda.so.1");
  assert.equal(firstError("\n  Device creation failed: -22.\n"), "Device creation failed: -22.");
  assert.equal(firstError(""), "");
});

const ok = (kind: EncoderTry["kind"], device?: string): EncoderTry => ({
  kind,
  codec: `c-${kind}`,
  ok: true,
  reason: "",
  device,
});
const bad = (kind: EncoderTry["kind"], reason: string): EncoderTry => ({ kind, codec: `c-${kind}`, ok: false, reason });

test("choose: auto takes the first usable kind; a forced kind that fails is an error naming why", () => {
  const vaapi = choose("auto", [bad("nvenc", "Cannot load libcuda.so.1"), ok("vaapi", "/dev/dri/renderD128")]);
  assert.equal(vaapi.kind, "vaapi");
  assert.equal(vaapi.ok, true);
  assert.equal(vaapi.device, "/dev/dri/renderD128");
  assert.equal(vaapi.tried.length, 2);

  const none = choose("auto", [bad("nvenc", "n1"), bad("vaapi", "v1"), bad("qsv", "q1"), bad("software", "s1")]);
  assert.equal(none.ok, false);
  assert.equal(none.kind, "software");
  assert.match(none.error ?? "", /nvenc: n1; vaapi: v1; qsv: q1; software: s1/);

  const forced = choose("nvenc", [bad("nvenc", "test encode failed: Cannot load libcuda.so.1")]);
  assert.equal(forced.ok, false);
  assert.equal(forced.kind, "nvenc");
  assert.equal(forced.codec, "h264_nvenc");
  assert.match(forced.error ?? "", /media\.encoder is nvenc but h264_nvenc is not usable here: .*libcuda/);

  assert.equal(choose("software", [ok("software")]).ok, true);
  // A forced kind ignores other kinds that happen to work.
  assert.equal(choose("qsv", [ok("software"), bad("qsv", "no device")]).ok, false);
});

test("probeKind: a missing encoder, no render node, a render node that does not work", opts, async () => {
  const list = parseEncoders(SAMPLE);
  const missing = await probeKind("software", parseEncoders(""), { ffmpegPath: "ffmpeg" });
  assert.deepEqual([missing.ok, missing.reason], [false, "this ffmpeg has no libx264 encoder (ffmpeg -encoders)"]);
  const noNode = await probeKind("vaapi", list, { ffmpegPath: "ffmpeg", nodes: [] });
  assert.match(noNode.reason, /\/dev\/dri\/renderD\* does not exist/);
  const deadNode = await probeKind("vaapi", list, { ffmpegPath: "ffmpeg", nodes: ["/nonexistent/renderD128"] });
  assert.equal(deadNode.ok, false);
  assert.match(deadNode.reason, /^test encode failed on \/nonexistent\/renderD128: \S/);
  const sw = await probeKind("software", list, { ffmpegPath: "ffmpeg" });
  assert.deepEqual([sw.ok, sw.reason, sw.codec], [true, "", "libx264"]);
});

test("detectEncoder on this machine: the first usable kind, and why each one before it was not", opts, async () => {
  const c = await detectEncoder("auto", { ffmpegPath: "ffmpeg" });
  assert.equal(c.ok, true, c.error ?? "");
  const i = c.tried.findIndex((t) => t.ok);
  assert.equal(c.tried[i]?.kind, c.kind, "the choice is the first usable kind");
  assert.deepEqual(
    c.tried.map((t) => t.kind),
    ["nvenc", "vaapi", "qsv", "software"].slice(0, i + 1),
  );
  for (const t of c.tried.slice(0, i)) assert.ok(t.reason.length > 10, `${t.kind}: '${t.reason}'`);
  if (renderNodes().length === 0 && i >= 2) {
    for (const t of c.tried.filter((x) => x.kind === "vaapi" || x.kind === "qsv"))
      assert.match(t.reason, /\/dev\/dri\/renderD\*/);
  }
  if (!existsSync("/dev/nvidia0")) assert.match(c.tried[0]?.reason ?? "", /test encode failed|no h264_nvenc/);

  const nv = await detectEncoder("nvenc", { ffmpegPath: "ffmpeg" });
  assert.deepEqual(
    nv.tried.map((t) => t.kind),
    ["nvenc"],
  );
  assert.equal(nv.ok, nv.tried[0]?.ok);
  if (!nv.ok) assert.match(nv.error ?? "", /^media\.encoder is nvenc but h264_nvenc is not usable here: \S/);
});

test("detectEncoder with no ffmpeg says so for every kind; cachedEncoder detects once", opts, async () => {
  const c = await detectEncoder("auto", { ffmpegPath: "/nonexistent/ffmpeg" });
  assert.equal(c.ok, false);
  assert.equal(c.tried.length, 4);
  for (const t of c.tried) assert.match(t.reason, /^cannot list encoders \(cannot run \/nonexistent\/ffmpeg/);
  assert.equal(cachedEncoder("software", "ffmpeg"), cachedEncoder("software", "ffmpeg"));
  assert.equal((await cachedEncoder("software", "ffmpeg")).codec, "libx264");
});
