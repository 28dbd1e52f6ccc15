/** StreamStats' sliding window: rates over the last 5 s of arrivals, on a fake clock. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Frame } from "./frame.ts";
import { StreamStats } from "./stats.ts";

const frame = (kind: "video" | "audio", bytes: number, keyframe = false): Frame => ({
  kind,
  dts: 0,
  data: Buffer.alloc(bytes),
  keyframe,
  config: false,
});

test("bitrate and fps over the sliding window; a short history counts only the time observed; old frames age out", () => {
  let now = 1_000_000;
  const s = new StreamStats(() => now);
  // 2 s of 30 fps video (1,000 bytes) and 50 audio frames/s (100 bytes).
  for (let ms = 0; ms < 2000; ms++) {
    now = 1_000_000 + ms;
    if (ms % 33 === 0) s.onFrame(frame("video", 1000, ms % 990 === 0)); // 61 frames
    if (ms % 20 === 0) s.onFrame(frame("audio", 100));
  }
  let f = s.figures();
  assert.ok(Math.abs(f.fps - 30.5) <= 1.5, `fps ${f.fps} over the 2 s observed`);
  assert.ok(Math.abs(f.bitrateKbps - ((61 * 1000 + 100 * 100) * 8) / 2000) <= 15, `bitrate ${f.bitrateKbps}`);
  // 10 more seconds: only the last 5 s count.
  for (let ms = 2000; ms < 12000; ms += 10) {
    now = 1_000_000 + ms;
    if (ms % 100 === 0) s.onFrame(frame("video", 2000));
  }
  f = s.figures();
  assert.ok(Math.abs(f.fps - 10) <= 0.5, `fps ${f.fps}`);
  assert.ok(Math.abs(f.bitrateKbps - 160) <= 2, `bitrate ${f.bitrateKbps}`);
  assert.equal(f.framesIn, 61 + 100 + 100);
  now += 6000;
  f = s.figures();
  assert.equal(f.fps, 0);
  assert.equal(f.bitrateKbps, 0);
});
