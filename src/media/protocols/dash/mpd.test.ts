import assert from "node:assert/strict";
import { test } from "node:test";
import { parse } from "mpd-parser";
import { CmafTimeline, type Segment } from "../fmp4/timeline.ts";
import { mediaPlaylist } from "../hls/playlist.ts";
import { anchored, dashManifest } from "./mpd.ts";
import { AST, timeline, V } from "./testing.ts";

test("a reconnect is a new DASH Period with its own init; mpd-parser reads both", () => {
  const t = timeline(4, 3);
  const xml = dashManifest(t, V, AST + 20_000);
  assert.match(xml, /type="dynamic"/);
  assert.match(
    xml,
    /<UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="http:\/\/h\/_ami\/time"\/>\n {2}<UTCTiming schemeIdUri="urn:mpeg:dash:utc:direct:2014" value="2023-11-14T22:13:40.000Z"\/>\n<\/MPD>/,
  );
  assert.match(xml, /maxSegmentDuration="PT1.000S"/);
  // Equal, contiguous segments are one run; each Period's first one carries its `t`.
  assert.match(xml, /<SegmentTimeline><S t="0" d="90000" r="3"\/><\/SegmentTimeline>/);
  assert.match(xml, /<SegmentTimeline><S t="0" d="48000" r="2"\/><\/SegmentTimeline>/);
  const periods = [...xml.matchAll(/<Period id="(p\d+)" start="([^"]+)">/g)].map((m) => [m[1], m[2]]);
  assert.deepEqual(periods, [
    ["p0", "PT0.000S"],
    ["p1", "PT7.000S"],
  ]);
  assert.match(xml, /initialization="t1-init.mp4" media="t1-\$Time\$.m4s"/);
  assert.match(xml, /initialization="t2-init-1.mp4" media="t2-\$Time\$.m4s"/);
  // Per track: the video's bytes (25 kB/s) and the audio's (5 kB/s) as peak bit rates, plus their headers.
  assert.match(
    xml,
    /<Representation id="v1" bandwidth="2\d{5}" codecs="avc1.64001f" width="320" height="240" sar="1:1" frameRate="25">/,
  );
  assert.match(xml, /<Representation id="a2" bandwidth="4\d{4}" codecs="mp4a.40.2" audioSamplingRate="48000">/);
  const m = parse(xml, { manifestUri: "http://h/live/x/index.mpd", NOW: AST + 20_000 });
  const segs = m.playlists[0]?.segments ?? [];
  assert.deepEqual(
    segs.map((s) => [s.uri, s.map?.uri]),
    [
      ...[0, 1, 2, 3].map((k) => [`t1-${k * 90000}.m4s`, "t1-init.mp4"]),
      ...[0, 1, 2].map((k) => [`t1-${k * 90000}.m4s`, "t1-init-1.mp4"]),
    ],
  );
  assert.equal(segs[4]?.discontinuity, true, "the second Period starts with a discontinuity");
  assert.deepEqual(
    segs.map((s) => s.presentationTime),
    [0, 1, 2, 3, 7, 8, 9],
    "each Period's segments sit at its start on the timeline",
  );
});

test("ended: a static MPD plays the Periods back to back; older Periods leave with their segments", () => {
  const t = timeline(4, 3);
  t.ended = true;
  const xml = dashManifest(t, V);
  assert.match(xml, /type="static" mediaPresentationDuration="PT7.000S"/);
  assert.match(xml, /<Period id="p1" start="PT4.000S">/);
  const m = parse(xml, { manifestUri: "http://h/live/x/index.mpd" });
  assert.equal(m.playlists[0]?.segments.length, 7);

  const live = timeline(4, 3);
  live.segments.splice(0, 4);
  const only = dashManifest(live, V, AST + 20_000);
  assert.doesNotMatch(only, /id="p0"/);
  assert.match(only, /<Period id="p1" start="PT7.000S">/);
  assert.equal(parse(only, { manifestUri: "http://h/x.mpd", NOW: AST + 20_000 }).playlists[0]?.segments.length, 3);
});

test("end grace: the playlist stays live without parts or hint, then ends; a return in time continues it", async () => {
  const t = timeline(3, 0);
  const graced = new CmafTimeline({ segmentSeconds: 1, partSeconds: 0.2, segmentCount: 20, endGraceMs: 60_000 });
  graced.segments.push(...t.segments);
  graced.end();
  assert.equal(graced.ended, false);
  assert.equal(graced.paused, true);
  const away = mediaPlaylist(graced);
  assert.doesNotMatch(away, /EXT-X-ENDLIST|EXT-X-PRELOAD-HINT/);
  graced.restart();
  assert.equal(graced.paused, false);
  assert.equal(graced.discontinuity, 1, "the returning publisher starts a new discontinuity sequence");
  // Until the new publisher's first segment exists, still no parts and no hint (they would imply no discontinuity).
  assert.doesNotMatch(mediaPlaylist(graced), /EXT-X-ENDLIST|EXT-X-PRELOAD-HINT/);
  const first = { ...(graced.segments.at(-1) as Segment), msn: 3, complete: false, disc: 1, discontinuity: true };
  graced.segments.push(first);
  const back = mediaPlaylist(graced);
  assert.match(
    back,
    /seg2\.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="init-1.mp4"\n.*\n#EXT-X-PART:.*\n#EXT-X-PRELOAD-HINT/,
  );

  const short = new CmafTimeline({ segmentSeconds: 1, partSeconds: 0.2, segmentCount: 20, endGraceMs: 20 });
  short.segments.push(...timeline(3, 0).segments);
  short.end();
  assert.ok(await short.waitUntil(() => short.ended, 10_000), "the end comes after the grace");
  assert.match(mediaPlaylist(short), /#EXT-X-ENDLIST\n$/);
  // No grace: the end is immediate, as before.
  const now = timeline(3, 0);
  now.end();
  assert.equal(now.ended, true);
});

test("for GStreamer each timeline starts with a one-tick anchor at 0 once the window has slid", () => {
  const t = timeline(6, 0);
  t.segments.splice(0, 2);
  const plain = dashManifest(t, V, AST + 20_000);
  assert.match(plain, /<SegmentTimeline><S t="180000" d="90000" r="3"\/><\/SegmentTimeline>/);
  assert.doesNotMatch(plain, /<S t="0" d="1"\/>/);
  const gst = dashManifest(t, { ...V, anchor: true }, AST + 20_000);
  assert.match(gst, /<SegmentTimeline><S t="0" d="1"\/><S t="180000" d="90000" r="3"\/><\/SegmentTimeline>/);
  // Outside the time shift buffer: a player that honours it lists only the real segments.
  const segs = parse(gst, { manifestUri: "http://h/x.mpd", NOW: AST + 20_000 }).playlists[0]?.segments ?? [];
  assert.ok(segs.some((s) => s.uri === "t1-180000.m4s"));
  // A window that still starts at 0 needs no anchor.
  const young = dashManifest(timeline(3, 0), { ...V, anchor: true }, AST + 5_000);
  assert.match(young, /<SegmentTimeline><S t="0" d="90000" r="2"\/><\/SegmentTimeline>/);
  assert.equal(anchored("GStreamer souphttpsrc 1.22.0 libsoup/3.2.3"), true);
  assert.equal(anchored("Mozilla/5.0"), false);
});
