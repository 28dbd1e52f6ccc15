/**
 * H.265 configuration from a real libx265 bitstream: the record we build from VPS/SPS/PPS parses back to the
 * picture size (a size that needs the conformance window included) and to the codec string ffprobe's level
 * implies; the E-RTMP video tag header round-trips.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { exVideoTag, FOURCC_HEVC, parseVideoTag, VIDEO_PACKET } from "../protocols/flv/ex-video.ts";
import { splitAnnexB } from "./annexb.ts";
import { HEVC_NAL, hevcConfigRecord, hevcNalType, parseHevcConfig } from "./hevc.ts";

const hasX265 = spawnSync("ffmpeg", ["-hide_banner", "-encoders"], { encoding: "utf8" }).stdout?.includes("libx265");

function encode(size: string): Buffer {
  const r = spawnSync(
    "ffmpeg",
    [
      ...["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", `testsrc2=size=${size}:rate=25`, "-frames:v", "3"],
      ...["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error", "-f", "hevc", "pipe:1"],
    ],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  assert.equal(r.status, 0, String(r.stderr));
  return r.stdout;
}

test("hvcC from libx265 parameter sets: picture size and codec string", { skip: !hasX265 }, () => {
  for (const [size, w, h] of [
    ["320x240", 320, 240],
    ["322x242", 322, 242],
  ] as const) {
    const nals = splitAnnexB(encode(size));
    const first = (t: number) => nals.find((n) => hevcNalType(n) === t) as Buffer;
    const info = parseHevcConfig(hevcConfigRecord(first(HEVC_NAL.VPS), first(HEVC_NAL.SPS), first(HEVC_NAL.PPS)));
    assert.equal(info.width, w, size);
    assert.equal(info.height, h, size);
    // Main profile (1), compatibility flags 1 and 2 set (reversed: 6), main tier, x265's level, constraint bytes.
    assert.match(info.codec, /^hvc1\.1\.6\.L\d+(\.[0-9A-F]{1,2})*$/);
  }
  assert.throws(() => parseHevcConfig(Buffer.alloc(10)), /not an HEVCDecoderConfigurationRecord/);
});

test("E-RTMP video tag headers: SequenceStart, CodedFrames with a signed composition time, CodedFramesX", () => {
  const body = Buffer.from([0, 0, 0, 1, 0x26]);
  const start = parseVideoTag(exVideoTag(VIDEO_PACKET.SequenceStart, FOURCC_HEVC, true, body));
  assert.deepEqual(start, { fourcc: "hvc1", frameType: 1, packet: "config", cts: 0, offset: 5 });
  const coded = parseVideoTag(exVideoTag(VIDEO_PACKET.CodedFrames, FOURCC_HEVC, false, body, -40));
  assert.deepEqual(coded, { fourcc: "hvc1", frameType: 2, packet: "frame", cts: -40, offset: 8 });
  const x = parseVideoTag(exVideoTag(VIDEO_PACKET.CodedFramesX, FOURCC_HEVC, true, body));
  assert.deepEqual(x, { fourcc: "hvc1", frameType: 1, packet: "frame", cts: 0, offset: 5 });
  // Legacy AVC keeps its meaning; a truncated enhanced header is no tag.
  assert.deepEqual(parseVideoTag(Buffer.from([0x17, 1, 0, 0, 0x28])), {
    fourcc: "avc1",
    frameType: 1,
    packet: "frame",
    cts: 40,
    offset: 5,
  });
  assert.equal(parseVideoTag(Buffer.from([0x91, 0x68])), undefined);
});
