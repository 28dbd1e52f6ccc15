import assert from "node:assert/strict";
import { test } from "node:test";
import { CmafTimeline, type Segment } from "../fmp4/timeline.ts";
import { mediaPlaylist, multivariantPlaylist } from "./playlist.ts";

/** A timeline with `n` complete 1 s segments (5 parts each), the ones from `discAt` on after a new publisher. */
function timeline(n: number, discAt = -1): CmafTimeline {
  const t = new CmafTimeline({ segmentSeconds: 1, partSeconds: 0.2, segmentCount: 20 });
  for (let i = 0; i < n; i++) {
    const parts = Array.from({ length: 5 }, (_, k) => ({
      n: i * 5 + k,
      data: Buffer.from([1]),
      duration: 0.2,
      independent: k === 0,
    }));
    const disc = discAt >= 0 && i >= discAt ? 1 : 0;
    const s: Segment = {
      msn: i,
      parts,
      start: i,
      duration: 1,
      t: i * 90000,
      wallclock: 1_700_000_000_000 + i * 1000,
      complete: true,
      disc,
      discontinuity: i === discAt,
      tfdt: (disc ? i - discAt : i) * 90000,
    };
    t.segments.push(s);
  }
  t.nextPart = n * 5;
  t.discontinuity = discAt >= 0 ? 1 : 0;
  return t;
}

test("delta update: segments before CAN-SKIP-UNTIL are replaced by EXT-X-SKIP", () => {
  const t = timeline(12);
  const full = mediaPlaylist(t);
  assert.match(full, /CAN-SKIP-UNTIL=6,/);
  assert.doesNotMatch(full, /EXT-X-SKIP:/);
  const delta = mediaPlaylist(t, { skip: true });
  // The playlist ends at 12 s; segments ending at or before 6 s (seg0..seg5) are skipped.
  assert.match(delta, /^#EXT-X-SKIP:SKIPPED-SEGMENTS=6$/m);
  assert.match(delta, /^#EXT-X-VERSION:10$/m);
  assert.match(delta, /^#EXT-X-MEDIA-SEQUENCE:0$/m);
  const segs = [...delta.matchAll(/^seg(\d+)\.m4s$/gm)].map((m) => Number(m[1]));
  assert.deepEqual(segs, [6, 7, 8, 9, 10, 11]);
  assert.match(delta, /#EXT-X-SKIP:SKIPPED-SEGMENTS=6\n#EXT-X-MAP:URI="init.mp4"\n#EXT-X-PROGRAM-DATE-TIME:/);
  // Nothing to skip in a short playlist: the full playlist is answered.
  assert.doesNotMatch(mediaPlaylist(timeline(4), { skip: true }), /EXT-X-SKIP/);
});

test("a new publisher continues the numbering after EXT-X-DISCONTINUITY with its own init", () => {
  const t = timeline(6, 3);
  const p = mediaPlaylist(t);
  assert.match(p, /#EXTINF:1,\nseg2\.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="init-1.mp4"\n/);
  assert.doesNotMatch(p, /EXT-X-DISCONTINUITY-SEQUENCE/);
  // Once the old publisher's segments have left the window, the sequence number carries the discontinuity.
  t.segments.splice(0, 3);
  const later = mediaPlaylist(t);
  assert.match(later, /^#EXT-X-DISCONTINUITY-SEQUENCE:1$/m);
  assert.doesNotMatch(later, /^#EXT-X-DISCONTINUITY$/m);
  assert.match(later, /#EXT-X-MAP:URI="init-1.mp4"/);
});

test("multivariant: BANDWIDTH (peak) and AVERAGE-BANDWIDTH, no EXT-X-INDEPENDENT-SEGMENTS promise", () => {
  const p = multivariantPlaylist({
    bandwidth: 2e6,
    averageBandwidth: 1.2e6,
    codecs: ["avc1.64001f"],
    width: 640,
    height: 360,
  });
  assert.match(
    p,
    /^#EXT-X-STREAM-INF:BANDWIDTH=2000000,AVERAGE-BANDWIDTH=1200000,CODECS="avc1.64001f",RESOLUTION=640x360$/m,
  );
  assert.doesNotMatch(p, /INDEPENDENT-SEGMENTS/);
  assert.doesNotMatch(multivariantPlaylist({ bandwidth: 1, codecs: [], width: null, height: null }), /AVERAGE/);
});
