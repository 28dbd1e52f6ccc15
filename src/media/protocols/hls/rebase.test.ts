import assert from "node:assert/strict";
import { test } from "node:test";
import { parseMoof } from "../fmp4/boxes.ts";
import { encodeFlv, mux } from "../fmp4/test-clips.ts";
import { CmafTimeline } from "../fmp4/timeline.ts";
import { parseBase, rebase, wantsRebase } from "./rebase.ts";

test("rebase: every track's tfdt counts from the session base; the shared bytes are untouched", () => {
  const frames = encodeFlv([
    ...["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-f", "lavfi", "-i", "sine", "-t", "4"],
    ...["-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac"],
  ]);
  const out = mux(frames);
  const t = new CmafTimeline({ segmentSeconds: 1, partSeconds: 0.2, segmentCount: 10 });
  const init = out.inits[0] as Buffer;
  t.setInit(init.subarray(0, init.readUInt32BE(0)), init.subarray(init.readUInt32BE(0)));
  for (const f of out.fragments) t.addFragment(f.moof, f.mdat);
  const seg = t.segments[2];
  assert.ok(seg?.data);
  const before = Buffer.from(seg.data);
  const moof = (b: Buffer) => parseMoof(b.subarray(0, b.readUInt32BE(0)), t.tracks);
  const rebased = rebase(seg.data, seg, t.tracks, 1000);
  assert.ok(before.equals(seg.data), "the stored segment is not modified");
  assert.equal(rebased.length, seg.data.length);
  const [v0, a0] = moof(seg.data);
  const [v1, a1] = moof(rebased);
  assert.ok(v0 && v1 && a0 && a1);
  const ts = (id: number) => t.tracks.find((x) => x.id === id)?.timescale ?? 1;
  assert.equal(v1.baseTime, v0.baseTime - ts(v0.trackId));
  assert.equal(a1.baseTime, a0.baseTime - ts(a0.trackId));
  assert.ok(Buffer.compare(rebased.subarray(-100), seg.data.subarray(-100)) === 0, "media data unchanged");
});

test("only GStreamer clients get a base; malformed bases are ignored", () => {
  assert.ok(wantsRebase("GStreamer souphttpsrc 1.22.0 libsoup/3.2.2"));
  assert.ok(!wantsRebase("Mozilla/5.0 (X11; Linux x86_64)"));
  assert.equal(parseBase("12000"), 12000);
  for (const bad of [null, "", "-1", "1e3", "x"]) assert.equal(parseBase(bad), undefined);
});
