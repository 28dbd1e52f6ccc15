/**
 * CmafTimeline's playlist invariants with real encoder output (ffmpeg H.264 + AAC through the CMAF muxer):
 * TARGETDURATION and PART-TARGET stay fixed for the timeline's life (RFC 8216 6.2.1), through a GOP longer than
 * the target and a publisher reconnect; no segment's rounded EXTINF exceeds the target and no part exceeds
 * PART-TARGET; segments cut without a keyframe are marked as such.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Frame } from "../../frame.ts";
import { mediaPlaylist } from "../hls/playlist.ts";
import { parseInit, parseMoof } from "./boxes.ts";
import { encodeFlv, mux, type Output } from "./test-clips.ts";
import { CmafTimeline } from "./timeline.ts";

/** 25 fps, keyframes only where `keys` says (seconds), for `seconds`. */
const clip = (seconds: number, keys: string) =>
  encodeFlv([
    ...["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440"],
    ...["-t", String(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "1000", "-sc_threshold", "0"],
    ...["-force_key_frames", keys, "-c:a", "aac"],
  ]);

/** Feed `out` to the timeline, rendering the playlist after every fragment; returns the tags' values seen. */
function feed(t: CmafTimeline, out: Output, seen: Map<string, Set<string>>): void {
  for (const init of out.inits) {
    const size = init.readUInt32BE(0);
    t.setInit(init.subarray(0, size), init.subarray(size));
  }
  for (const f of out.fragments) {
    t.addFragment(f.moof, f.mdat);
    // Playlists are served once the first segment is complete.
    if (t.listed().length === 0) continue;
    const p = mediaPlaylist(t);
    for (const name of ["EXT-X-TARGETDURATION", "EXT-X-PART-INF", "EXT-X-SERVER-CONTROL"]) {
      const v = new RegExp(`^#${name}:(.*)$`, "m").exec(p)?.[1] ?? "";
      seen.set(name, (seen.get(name) ?? new Set()).add(v));
    }
  }
}

test("TARGETDURATION, PART-TARGET and CAN-SKIP-UNTIL stay fixed through a long GOP and a reconnect", () => {
  const t = new CmafTimeline({ segmentSeconds: 1, partSeconds: 0.2, segmentCount: 100 });
  const seen = new Map<string, Set<string>>();
  // 1 s GOPs, then one of 5 s (longer than the 1 s target), then 1 s GOPs again.
  feed(t, mux(clip(12, "0,1,2,3,8,9,10,11")), seen);
  t.restart();
  // The returning publisher's timestamps jitter by a few ms (as after a reconnect): parts must still fit.
  const jittered = clip(4, "0,1,2,3").map((f: Frame, i) => (f.config ? f : { ...f, dts: f.dts + (i % 3) }));
  feed(t, mux(jittered), seen);
  t.end();
  assert.deepEqual([...(seen.get("EXT-X-TARGETDURATION") ?? [])], ["1"]);
  assert.deepEqual([...(seen.get("EXT-X-PART-INF") ?? [])], ["PART-TARGET=0.2"]);
  assert.equal(seen.get("EXT-X-SERVER-CONTROL")?.size, 1, [...(seen.get("EXT-X-SERVER-CONTROL") ?? [])].join(" | "));
  assert.match([...(seen.get("EXT-X-SERVER-CONTROL") ?? [])][0] ?? "", /CAN-SKIP-UNTIL=6,/);

  const segs = t.segments;
  for (const s of segs) {
    assert.ok(Math.round(s.duration) <= 1, `seg${s.msn} lasts ${s.duration} s`);
    for (const p of s.parts) assert.ok(p.duration <= 0.2 + 1e-9, `part${p.n} lasts ${p.duration} s`);
  }
  // The long GOP was cut without keyframes; the segments after it start on keyframes again.
  const dependent = segs.filter((s) => !s.parts[0]?.independent);
  assert.ok(dependent.length >= 3, `${dependent.length} segments cut inside the long GOP`);
  assert.ok(
    dependent.every((s) => s.start > 3.5 && s.start < 8),
    dependent.map((s) => s.start).join(","),
  );
  assert.ok(segs.at(-1)?.parts[0]?.independent);
});

test("the first GOP sets the target: 2.5 s GOPs make TARGETDURATION 3, kept when GOPs get shorter", () => {
  const t = new CmafTimeline({ segmentSeconds: 1, partSeconds: 0.2, segmentCount: 100 });
  const seen = new Map<string, Set<string>>();
  feed(t, mux(clip(9, "0,2.5,5,6,7,8")), seen);
  assert.deepEqual([...(seen.get("EXT-X-TARGETDURATION") ?? [])], ["3"]);
  assert.equal(t.targetDuration, 3);
  assert.ok(
    t.segments.every((s) => s.parts[0]?.independent),
    "every GOP fits the target: all cut on keyframes",
  );
  const p = mediaPlaylist(t);
  assert.match(p, /CAN-SKIP-UNTIL=18,/);
  assert.match(p, /^#EXT-X-INDEPENDENT-SEGMENTS$/m);
});

test("a playlist listing a segment cut without a keyframe does not claim EXT-X-INDEPENDENT-SEGMENTS", () => {
  const t = new CmafTimeline({ segmentSeconds: 1, partSeconds: 0.2, segmentCount: 100 });
  feed(t, mux(clip(6, "0,1,5")), new Map());
  assert.doesNotMatch(mediaPlaylist(t), /EXT-X-INDEPENDENT-SEGMENTS/);
  const out = mux(clip(6, "0,1,5"));
  const init = out.inits[0] as Buffer;
  const tracks = parseInit(init.subarray(init.readUInt32BE(0)));
  const parts = out.fragments.map((f) => parseMoof(f.moof, tracks)[0]?.duration ?? 0);
  assert.ok(Math.max(...parts) <= 0.2 * 90000, `longest part ${Math.max(...parts) / 90} ms`);
});
