import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { Frame } from "../../frame.ts";
import { parseVideoTag } from "../flv/ex-video.ts";
import { TsMuxer } from "../mpegts/mux.ts";
import { demuxAll, ffmpegTs, probePackets, run } from "../mpegts/testing.ts";
import { avccNals, avcNaluFrame } from "./avc-tags.ts";
import { encoderArgs, withRecoveryPoint } from "./video-transcode.ts";

test("a recovery point SEI goes in front of a frame's first slice (after AUD/SPS/PPS), nothing else moves", () => {
  const aud = Buffer.from([0x09, 0xf0]);
  const sps = Buffer.from([0x67, 0x42, 0xc0, 0x1e]);
  const slice = Buffer.from([0x41, 0x9a, 1, 2, 3]);
  const slice2 = Buffer.from([0x01, 0x9b, 4]);
  const f = avcNaluFrame(40, [aud, sps, slice, slice2], false);
  const marked = withRecoveryPoint(f.data, 5, 4);
  assert.ok(marked);
  assert.deepEqual(marked.subarray(0, 5), f.data.subarray(0, 5), "the tag header is kept");
  const nals = avccNals(marked.subarray(5), 4);
  assert.deepEqual(
    nals.map((n) => n[0]! & 0x1f),
    [9, 7, 6, 1, 1],
  );
  assert.deepEqual(nals[2], Buffer.from([0x06, 0x06, 0x01, 0x84, 0x80]), "SEI payload 6 (recovery point), size 1");
  assert.deepEqual(nals[3], slice);
  // No slice: nothing to mark.
  assert.equal(withRecoveryPoint(avcNaluFrame(0, [aud, sps], false).data, 5, 4), undefined);
});

test("H.265 input: exactly the frames whose PTS carries the mark tick come out as IDRs, times unchanged", async () => {
  const dir = await mkdtemp(join(tmpdir(), "ami-hevc-mark-"));
  try {
    // 4 s of 25 fps H.265 with 3 B-frames and a keyframe a second, remuxed as the re-encoder feeds ffmpeg.
    const frames = demuxAll(await ffmpegTs("h265-opus")).frames.filter((f) => f.kind === "video");
    const mux = new TsMuxer({ offsetMs: 1000 });
    const marked = new Set([20, 37, 60]); // decode order, none a source keyframe (0, 25, 50, 75)
    let n = -1;
    const ts = Buffer.concat(frames.map((f) => (f.config ? mux.frame(f) : mux.frame(f, marked.has(++n) ? 1 : 0))));
    const input = join(dir, "in.ts");
    const output = join(dir, "out.flv");
    await writeFile(input, ts);
    const args = encoderArgs(true, 500).map((a) => (a === "pipe:0" ? input : a === "pipe:1" ? output : a));
    await run("ffmpeg", ["-y", ...args]);
    const out = await probePackets(output, "v"); // FLV: times in ms
    const media = frames.filter((f) => !f.config);
    const pts = (f: Frame) => f.dts + (parseVideoTag(f.data)?.cts ?? 0) + 1000;
    assert.equal(out.length, media.length, "every frame encoded");
    const keys = out.filter((p) => p.key).map((p) => p.pts);
    const want = [0, ...marked].map((i) => pts(media[i] as Frame)).sort((a, b) => a - b);
    assert.deepEqual(keys, want, "IDRs: the first frame and the marked ones, not the source's keyframes");
    assert.deepEqual(
      out.map((p) => p.pts).sort((a, b) => a - b),
      media.map(pts).sort((a, b) => a - b),
      "the output keeps the input's presentation times (the tick rounds away)",
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
