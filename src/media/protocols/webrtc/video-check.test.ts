import assert from "node:assert/strict";
import { test } from "node:test";
import { MediaStream } from "../../hub.ts";
import { exVideoTag, FOURCC_HEVC, VIDEO_PACKET } from "../flv/ex-video.ts";
import { videoFrame } from "../flv/tag.ts";
import { avcConfigFrame, avcConfigRecord, avcNaluFrame } from "./avc-tags.ts";
import { PASSTHROUGH_AFTER, VideoCheck } from "./video-check.ts";

const SLICE = Buffer.from([0x41, 0x9a, 0x00]);
const IDR = Buffer.from([0x65, 0x88, 0x80]);
/** An SPS NAL unit with the given profile_idc (the record copies profile, constraints and level from it). */
const sps = (profile: number) => Buffer.from([0x67, profile, 0x00, 0x1f, 0xac]);
const PPS = Buffer.from([0x68, 0xce, 0x38, 0x80]);

function stream(): MediaStream {
  return new MediaStream("live/t", { protocol: "test", remote: "-", since: 0 }, { readerQueue: 64, gopCache: 64 });
}

test("frames in presentation order: pending, then passthrough after PASSTHROUGH_AFTER frames", () => {
  const s = stream();
  const c = VideoCheck.attach(s);
  s.write(avcConfigFrame(0, avcConfigRecord(sps(100), PPS)));
  for (let i = 0; i < PASSTHROUGH_AFTER - 1; i++) s.write(avcNaluFrame(i * 33, [i === 0 ? IDR : SLICE], i === 0));
  assert.equal(c.verdict().mode, "pending");
  s.write(avcNaluFrame(PASSTHROUGH_AFTER * 33, [SLICE], false));
  assert.equal(c.verdict().mode, "passthrough");
  assert.equal(c.reordered, 0);
});

test("a constant composition offset (no reordering) is not B-frames", () => {
  const c = new VideoCheck();
  for (let i = 0; i < PASSTHROUGH_AFTER; i++) c.push(avcNaluFrame(i * 33, [SLICE], i === 0, 66));
  assert.equal(c.verdict().mode, "passthrough");
});

test("B-frames (x264's decode order: I P B B) mean re-encode, with the reason", () => {
  const c = new VideoCheck();
  // pts: I 66, P 166, B 100, B 133 (dts 0, 33, 66, 100)
  const frames = [
    avcNaluFrame(0, [IDR], true, 66),
    avcNaluFrame(33, [SLICE], false, 133),
    avcNaluFrame(66, [SLICE], false, 34),
    avcNaluFrame(100, [SLICE], false, 33),
  ];
  for (const f of frames) c.push(f);
  const v = c.verdict();
  assert.equal(v.mode, "reencode");
  assert.match(v.reason, /B-frames \(2 of 4 frames out of presentation order, composition offsets up to 133 ms\)/);
  assert.equal(c.lastPts, 133);
});

test("High 10 and High 4:4:4 profiles mean re-encode even without B-frames; High (8-bit) does not", () => {
  for (const [profile, mode] of [
    [110, "reencode"],
    [244, "reencode"],
    [122, "reencode"],
    [100, "pending"],
    [66, "pending"],
  ] as const) {
    const c = new VideoCheck();
    c.push(avcConfigFrame(0, avcConfigRecord(sps(profile), PPS)));
    assert.equal(c.verdict().mode, mode, `profile ${profile}`);
  }
});

test("settled() resolves on the first reordered frame, or at its deadline while still pending", async () => {
  const c = new VideoCheck();
  const waiting = c.settled(5000);
  c.push(avcNaluFrame(0, [IDR], true, 66));
  c.push(avcNaluFrame(33, [SLICE], false, 0));
  assert.equal((await waiting).mode, "reencode");
  const other = new VideoCheck();
  assert.equal((await other.settled(20)).mode, "pending");
});

const hevc = (dts: number, key: boolean, cts: number) =>
  videoFrame(
    dts,
    exVideoTag(VIDEO_PACKET.CodedFrames, FOURCC_HEVC, key, Buffer.from([0, 0, 0, 3, 0x26, 1, 0xaf]), cts),
  );

test("H.265 is re-encoded for WebRTC (from its sequence start on), unless the viewer takes H.265 and no B-frames", () => {
  const c = new VideoCheck();
  c.push(videoFrame(0, exVideoTag(VIDEO_PACKET.SequenceStart, FOURCC_HEVC, true, Buffer.alloc(23))));
  assert.equal(c.hevc, true);
  assert.deepEqual(c.verdict(), {
    mode: "reencode",
    reason: "H.265 source: re-encoded to H.264, which every browser's WebRTC decodes",
  });
  for (let i = 0; i < PASSTHROUGH_AFTER; i++) c.push(hevc(i * 33, i === 0, 0));
  assert.equal(c.verdict().mode, "reencode", "whatever its frames");
  assert.equal(c.verdict({ h265: true }).mode, "passthrough", "a viewer that decodes H.265 gets it as it is");
  assert.equal(c.lastPts, (PASSTHROUGH_AFTER - 1) * 33);
  // B-frames: composition offsets read from the enhanced tag.
  c.push(hevc(PASSTHROUGH_AFTER * 33, false, 100));
  c.push(hevc(PASSTHROUGH_AFTER * 33 + 33, false, 0));
  const v = c.verdict({ h265: true });
  assert.equal(v.mode, "reencode");
  assert.match(v.reason, /^H\.265 source with B-frames \(1 of 32 frames out of presentation order, .* up to 100 ms\)/);
});
