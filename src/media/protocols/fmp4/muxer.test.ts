/**
 * The CMAF muxer against real encoder output: ffmpeg encodes H.264 (with B-frames) + AAC into FLV, the tags
 * become hub frames, the muxer's init + fragments are read back by ffprobe (codecs, every packet's timestamps)
 * and by our own moof parser (fragments start on keyframes, parts stay near the part duration).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { Frame } from "../../frame.ts";
import { audioFrame } from "../flv/tag.ts";
import { parseInit, parseMoof } from "./boxes.ts";
import { CmafMuxer } from "./muxer.ts";
import { encodeFlv, mux, type Output } from "./test-clips.ts";

const dir = mkdtempSync(join(tmpdir(), "ami-mux-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const clip = (size: string, seconds = 3) => [
  ...["-f", "lavfi", "-i", `testsrc2=size=${size}:rate=25`, "-f", "lavfi", "-i", "sine=frequency=440"],
  ...["-t", String(seconds), "-c:v", "libx264", "-preset", "fast", "-bf", "2", "-g", "25", "-c:a", "aac"],
];

/** ffprobe's packets of a file: [stream type, pts ms, key]. */
export function probePackets(file: string): { streams: string[]; packets: [string, number, boolean][] } {
  const r = spawnSync(
    "ffprobe",
    [
      "-v",
      "error",
      "-show_entries",
      "stream=codec_type,codec_name:packet=stream_index,pts_time,flags",
      "-of",
      "json",
      file,
    ],
    { encoding: "utf8" },
  );
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as {
    streams: { codec_type: string; codec_name: string }[];
    packets: { stream_index: number; pts_time: string; flags: string }[];
  };
  const types = j.streams.map((s) => s.codec_type);
  return {
    streams: j.streams.map((s) => `${s.codec_type}:${s.codec_name}`).sort(),
    packets: j.packets.map((p) => [
      types[p.stream_index] as string,
      Math.round(Number(p.pts_time) * 1000),
      p.flags.includes("K"),
    ]),
  };
}

const frames = encodeFlv(clip("320x240"));
/** Coded frames (not configs, not AVC end-of-sequence). */
const media = (kind: string) => frames.filter((f) => f.kind === kind && !f.config && f.data[1] === 1);

test("H.264 (B-frames) + AAC: ffprobe reads every sample with the FLV's presentation times", () => {
  const out = mux(frames);
  assert.equal(out.inits.length, 1);
  assert.equal(out.restarts, 0);
  const file = join(dir, "avc.mp4");
  writeFileSync(file, Buffer.concat([out.inits[0] as Buffer, ...out.fragments.flatMap((f) => [f.moof, f.mdat])]));
  const p = probePackets(file);
  assert.deepEqual(p.streams, ["audio:aac", "video:h264"]);
  const video = media("video");
  const base = video[0]?.dts ?? 0;
  // FLV presentation time = dts + composition time (SI24 in bytes 2..4 of an AVC tag).
  const pts = video.map((f) => f.dts - base + f.data.readIntBE(2, 3)).sort((a, b) => a - b);
  assert.ok(
    video.some((f) => f.data.readIntBE(2, 3) !== 0),
    "the clip has B-frames",
  );
  const got = p.packets.filter((x) => x[0] === "video").map((x) => x[1]);
  assert.deepEqual(
    [...got].sort((a, b) => a - b),
    pts,
  );
  assert.equal(p.packets.filter((x) => x[0] === "video" && x[2]).length, video.filter((f) => f.keyframe).length);
  assert.equal(p.packets.filter((x) => x[0] === "audio").length, media("audio").length);
});

test("fragments: each keyframe starts one, parts stay within a frame of the part duration", () => {
  const out = mux(frames, 0.2);
  const tracks = parseInit((out.inits[0] as Buffer).subarray((out.inits[0] as Buffer).readUInt32BE(0)));
  assert.deepEqual(
    tracks.map((t) => [t.id, t.kind, t.timescale]),
    [
      [1, "video", 90000],
      [2, "audio", 44100],
    ],
  );
  const infos = out.fragments.map((f) => parseMoof(f.moof, tracks).find((t) => t.trackId === 1));
  const keys = media("video").filter((f) => f.keyframe).length;
  assert.equal(infos.filter((i) => i?.firstSampleSync).length, keys);
  let t = 0;
  for (const i of infos) {
    assert.ok(i, "every fragment has video");
    assert.equal(i.baseTime, t, "fragments are contiguous");
    assert.ok(i.duration <= 0.2 * 90000 + 3600, `part of ${i.duration / 90} ms`);
    t += i.duration;
  }
});

/** The main track's fragment start times (ms). */
function starts(out: Output): number[] {
  const init = out.inits.at(-1) as Buffer;
  const tracks = parseInit(init.subarray(init.readUInt32BE(0)));
  return out.fragments.map((f) => (parseMoof(f.moof, tracks)[0]?.baseTime ?? -1) / 90);
}

const continuous = (s: number[]) =>
  s.every((v, i) => i === 0 || (v > (s[i - 1] as number) && v - (s[i - 1] as number) < 500));

test("timestamps: 32-bit rollover and a publisher's clock jumping back keep the media time continuous", () => {
  const wrapped = frames.map((f) => ({ ...f, dts: (f.dts + 2 ** 32 - 1500) >>> 0 }));
  assert.ok(continuous(starts(mux(wrapped))), "rollover");
  const half = Math.floor(frames.length / 2);
  const jumped = frames.map((f, i) => (i >= half && !f.config ? { ...f, dts: f.dts + 60_000 } : f));
  const back = frames.map((f, i) => (i >= half && !f.config ? { ...f, dts: Math.max(0, f.dts - 1400) } : f));
  for (const s of [starts(mux(jumped)), starts(mux(back))]) assert.ok(continuous(s), `jump: ${s.join(",")}`);
});

test("a changed AVC configuration mid-stream: restart, then a new init segment with the new picture size", () => {
  const second = encodeFlv(clip("640x360", 1));
  const out = mux([...frames, ...second.map((f) => ({ ...f, dts: f.dts + 3000 }))]);
  assert.equal(out.restarts, 1);
  assert.equal(out.inits.length, 2);
  const file = join(dir, "second.mp4");
  writeFileSync(file, out.inits[1] as Buffer);
  const r = spawnSync("ffprobe", ["-v", "error", "-show_entries", "stream=width,height", "-of", "csv=p=0", file], {
    encoding: "utf8",
  });
  assert.match(r.stdout, /640,360/);
});

test("a frame of an unknown codec is skipped with a reason, the other track still packaged", () => {
  const skipped: string[] = [];
  let fragments = 0;
  const m = new CmafMuxer(0.2, {
    init: () => {},
    fragment: () => fragments++,
    restart: () => {},
    skipped: (kind, reason) => skipped.push(`${kind}: ${reason}`),
  });
  // FLV SoundFormat 2 (MP3) has no sequence header and is not one the muxer packages.
  const mp3 = (dts: number): Frame => audioFrame(dts, Buffer.from([0x2f, 0xff, 0xfb, 0x90]));
  for (const f of frames) m.push(f.kind === "video" ? f : mp3(f.dts));
  m.end();
  assert.deepEqual(skipped, ["audio: unsupported audio codec for CMAF (FLV SoundFormat 2)"]);
  assert.ok(fragments > 5);
});

test("an audio config arriving after the first video keyframe still makes one init with both tracks", () => {
  const aConfig = frames.find((f) => f.kind === "audio" && f.config) as Frame;
  // As WHIP ingest does it: video first; the audio config comes with the first audio packet.
  const at = frames.findIndex((f) => f.kind === "video" && f.keyframe) + 3;
  const late = frames.filter((f, i) => f.kind === "video" || i >= at);
  late.splice(
    late.findIndex((f) => f.kind === "audio"),
    0,
    aConfig,
  );
  const out = mux(late);
  assert.equal(out.inits.length, 1);
  assert.equal(out.restarts, 0);
  const init = out.inits[0] as Buffer;
  assert.deepEqual(
    parseInit(init.subarray(init.readUInt32BE(0))).map((t) => t.kind),
    ["video", "audio"],
  );
});
