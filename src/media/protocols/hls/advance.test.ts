import assert from "node:assert/strict";
import { test } from "node:test";
import { CmafTimeline, type Segment } from "../fmp4/timeline.ts";
import { advancePartLimit, beyondAdvanceLimit, holdMs } from "./advance.ts";

/** Segments 0..2 complete (5 parts each) and segment 3 open with 2 parts; 0.2 s parts. */
function timeline(): CmafTimeline {
  const t = new CmafTimeline({ segmentSeconds: 2, partSeconds: 0.2, segmentCount: 10 });
  for (let i = 0; i < 4; i++) {
    const n = i === 3 ? 2 : 5;
    const parts = Array.from({ length: n }, (_, k) => ({
      n: i * 5 + k,
      data: Buffer.from([1]),
      duration: 0.2,
      independent: k === 0,
    }));
    const s: Segment = {
      msn: i,
      parts,
      start: i,
      duration: n * 0.2,
      t: 0,
      wallclock: 0,
      complete: i < 3,
      disc: 0,
      discontinuity: false,
      tfdt: 0,
    };
    t.segments.push(s);
  }
  return t;
}

test("advance limits (LL-HLS 6.2.5.2): two segments, 3 s of parts", () => {
  const t = timeline();
  assert.equal(advancePartLimit(0.2), 15);
  assert.equal(advancePartLimit(0.33334), 9);
  assert.equal(advancePartLimit(2), 3);
  assert.equal(beyondAdvanceLimit(t, 5), false, "two after the open segment");
  assert.equal(beyondAdvanceLimit(t, 6), true);
  assert.equal(beyondAdvanceLimit(t, 3, 2), false, "the next part");
  assert.equal(beyondAdvanceLimit(t, 3, 16), false, "15 parts ahead");
  assert.equal(beyondAdvanceLimit(t, 3, 17), true, "16 parts ahead");
  assert.equal(beyondAdvanceLimit(t, 4, 13), false);
  assert.equal(beyondAdvanceLimit(t, 4, 15), true, "at least 16 parts ahead");
  assert.equal(beyondAdvanceLimit(t, 1, 1000), false, "an old segment: answered at once anyway");
});

test("blocking requests are held for three target durations, not three configured segment durations", () => {
  const t = timeline();
  assert.equal(holdMs(t), 6000);
});
