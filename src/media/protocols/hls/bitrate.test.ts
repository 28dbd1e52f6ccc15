import assert from "node:assert/strict";
import { test } from "node:test";
import { segmentBitrates } from "./bitrate.ts";

test("peak: the largest bit rate of runs lasting 0.5 to 1.5 target durations; average over all", () => {
  const segs = [
    { duration: 2, bytes: 250_000 }, // 1 Mbit/s
    { duration: 0.5, bytes: 250_000 }, // 4 Mbit/s, but too short alone for a 2 s target
    { duration: 2, bytes: 500_000 }, // 2 Mbit/s
  ];
  const r = segmentBitrates(segs, 2);
  // Runs within 1..3 s: [0] 1 Mbit/s, [0,1] 1.6, [1,2] 2.667, [2] 2.
  assert.ok(r);
  assert.equal(Math.round(r.peak), Math.round((8 * 750_000) / 2.5));
  assert.equal(Math.round(r.average), Math.round((8 * 1_000_000) / 4.5));
  assert.equal(segmentBitrates([{ duration: 0.4, bytes: 1000 }], 2), undefined, "nothing long enough yet");
});
