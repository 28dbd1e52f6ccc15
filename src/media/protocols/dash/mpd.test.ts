import assert from "node:assert/strict";
import { test } from "node:test";
import { parse } from "mpd-parser";
import { CmafTimeline, type Segment } from "../fmp4/timeline.ts";
import { mediaPlaylist } from "../hls/playlist.ts";
import { dashManifest } from "./mpd.ts";

const V = { bandwidth: 500_000, codecs: ["avc1.64001f", "mp4a.40.2"], width: 320, height: 240 };
const AST = 1_700_000_000_000;

/**
 * Segments of 1 s (timescale 90 kHz): `first` from publisher 0, then `second` from publisher 1 whose timestamps
 * restart at 0 and whose Period starts `gap` seconds after the first one's end (it reconnected that much later).
 */
function timeline(first: number, second: number, gap = 3): CmafTimeline {
  const t = new CmafTimeline({ segmentSeconds: 1, partSeconds: 0.2, segmentCount: 20 });
  t.availabilityStart = AST;
  const add = (msn: number, disc: number, k: number) => {
    const s: Segment = {
      msn,
      parts: [{ n: msn, data: Buffer.from([1]), duration: 1, independent: true }],
      start: msn,
      duration: 1,
      t: msn * 90000,
      wallclock: AST + msn * 1000,
      complete: true,
      disc,
      discontinuity: disc > 0 && k === 0,
      tfdt: k * 90000,
      data: Buffer.from([1]),
    };
    t.segments.push(s);
  };
  for (let i = 0; i < first; i++) add(i, 0, i);
  t.periods.set(0, { start: 0, t0: 0, timescale: 90000 });
  if (second > 0) {
    t.discontinuity = 1;
    t.periods.set(1, { start: first + gap, t0: 0, timescale: 90000 });
    for (let i = 0; i < second; i++) add(first + i, 1, i);
  }
  t.tracks = [{ id: 1, kind: "video", timescale: 90000 } as CmafTimeline["tracks"][number]];
  return t;
}

test("a reconnect is a new DASH Period with its own init; mpd-parser reads both", () => {
  const t = timeline(4, 3);
  const xml = dashManifest(t, V, AST + 20_000);
  assert.match(xml, /type="dynamic"/);
  assert.match(
    xml,
    /<UTCTiming schemeIdUri="urn:mpeg:dash:utc:direct:2014" value="2023-11-14T22:13:40.000Z"\/>\n<\/MPD>/,
  );
  const periods = [...xml.matchAll(/<Period id="(p\d+)" start="([^"]+)">/g)].map((m) => [m[1], m[2]]);
  assert.deepEqual(periods, [
    ["p0", "PT0.000S"],
    ["p1", "PT7.000S"],
  ]);
  assert.match(xml, /initialization="init.mp4" media="seg\$Number\$.m4s" startNumber="0"/);
  assert.match(xml, /initialization="init-1.mp4" media="seg\$Number\$.m4s" startNumber="4"/);
  const m = parse(xml, { manifestUri: "http://h/live/x/index.mpd", NOW: AST + 20_000 });
  const segs = m.playlists[0]?.segments ?? [];
  assert.deepEqual(
    segs.map((s) => [s.uri, s.map?.uri]),
    [...[0, 1, 2, 3].map((n) => [`seg${n}.m4s`, "init.mp4"]), ...[4, 5, 6].map((n) => [`seg${n}.m4s`, "init-1.mp4"])],
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
