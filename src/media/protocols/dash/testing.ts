/** For tests: CMAF timelines of real muxed fragments (video 90 kHz, audio 48 kHz), as the MPD code reads them. */
import { parseInit } from "../fmp4/boxes.ts";
import { fragment, ftyp, moov } from "../fmp4/mux.ts";
import { fakeTrack } from "../fmp4/testing.ts";
import { CmafTimeline, type Segment } from "../fmp4/timeline.ts";
import type { DashInfo } from "./mpd.ts";

export const V: DashInfo = {
  bandwidth: 500_000,
  video: { codec: "avc1.64001f", width: 320, height: 240 },
  audio: { codec: "mp4a.40.2", sampleRate: 48000, channels: 2 },
  timeUrl: "http://h/_ami/time",
};
export const AST = 1_700_000_000_000;
const MOOV = moov([fakeTrack("video", 90000), fakeTrack("audio", 48000)]);
const INIT = Buffer.concat([ftyp(), MOOV]);

/** One muxed second from media time `k` s: 25 video samples of 1000 bytes, 50 audio samples of 100 bytes. */
function second(k: number): Buffer {
  const run = (ts: number, n: number, size: number, withCts: boolean) => ({
    baseTime: k * ts,
    samples: Array.from({ length: n }, (_, i) => ({
      data: Buffer.alloc(size, i),
      duration: ts / n,
      cts: 0,
      sync: i === 0,
    })),
    withCts,
  });
  const { moof, mdat } = fragment(k + 1, [run(90000, 25, 1000, true), run(48000, 50, 100, false)]);
  return Buffer.concat([moof, mdat]);
}

/**
 * Segments of 1 s (video 90 kHz, audio 48 kHz): `first` from publisher 0, then `second` from publisher 1 whose
 * timestamps restart at 0 and whose Period starts `gap` seconds after the first one's end (it reconnected that
 * much later).
 */
export function timeline(first: number, second_: number, gap = 3, ast = AST): CmafTimeline {
  const t = new CmafTimeline({ segmentSeconds: 1, partSeconds: 0.2, segmentCount: 20 });
  t.availabilityStart = ast;
  const add = (msn: number, disc: number, k: number) => {
    const data = second(k);
    const s: Segment = {
      msn,
      parts: [{ n: msn, data, duration: 1, independent: true }],
      start: msn,
      duration: 1,
      t: msn * 90000,
      wallclock: ast + msn * 1000,
      complete: true,
      disc,
      discontinuity: disc > 0 && k === 0,
      tfdt: k * 90000,
      data,
    };
    t.segments.push(s);
  };
  for (let i = 0; i < first; i++) add(i, 0, i);
  t.periods.set(0, { start: 0, t0: 0, timescale: 90000 });
  t.inits.set(0, INIT);
  if (second_ > 0) {
    t.discontinuity = 1;
    t.periods.set(1, { start: first + gap, t0: 0, timescale: 90000 });
    t.inits.set(1, INIT);
    for (let i = 0; i < second_; i++) add(first + i, 1, i);
  }
  t.tracks = parseInit(MOOV);
  return t;
}
