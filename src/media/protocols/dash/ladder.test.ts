import assert from "node:assert/strict";
import { test } from "node:test";
import { parse } from "mpd-parser";
import { ladderManifest } from "./ladder.ts";
import { AST, timeline, V } from "./testing.ts";

const attr = (xml: string, name: string) => [...xml.matchAll(new RegExp(`\\b${name}="([^"]*)"`, "g"))].map((m) => m[1]);

test("a rendition that started 2 s after its source is placed on the source's clock in one video set", () => {
  const source = timeline(6, 0);
  // Its own media time starts at 0 two seconds later (the transcoder's first frame).
  const rung = timeline(4, 0, 3, AST + 2000);
  const xml = ladderManifest(source, V, [{ name: "240p", t: rung, info: V }], AST + 20_000);
  assert.match(xml, /<Period id="p0" start="PT2.000S">/, "the Period starts where every Representation has media");
  const sets = xml.match(/<AdaptationSet [^>]*>/g) ?? [];
  assert.deepEqual(
    sets.map((s) => /contentType="(\w+)"/.exec(s)?.[1]),
    ["video", "audio"],
  );
  assert.deepEqual(attr(xml, "id").slice(1), ["1", "v1", "240p/v1", "2", "a2"]);
  // At the Period start (2 s): the source's media time is 2 s, the rendition's 0.
  assert.deepEqual(attr(xml, "presentationTimeOffset"), ["180000", "0", "96000"]);
  assert.match(xml, /initialization="240p\/t1-init.mp4" media="240p\/t1-\$Time\$.m4s"/);
  const m = parse(xml, { manifestUri: "http://h/abr/cam/master.mpd", NOW: AST + 20_000 });
  assert.equal(m.playlists.length, 2, "two video Representations");
  // Both put their media at the same wall-clock instants: the rendition's segment k = the source's segment k + 2.
  const starts = m.playlists.map((p) => p.segments.map((s) => s.presentationTime));
  assert.deepEqual(starts[1], starts[0]?.slice(2));
});

test("ended or not started: the source's own MPD", () => {
  const source = timeline(3, 0);
  source.ended = true;
  const xml = ladderManifest(source, V, [{ name: "240p", t: timeline(3, 0), info: V }]);
  assert.match(xml, /type="static"/);
  assert.doesNotMatch(xml, /240p/);
});
