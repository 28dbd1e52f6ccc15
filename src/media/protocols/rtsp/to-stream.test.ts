import assert from "node:assert/strict";
import { test } from "node:test";
import { parseSdp } from "./sdp.ts";
import { checkTracks, DecodeOrder, REORDER_WINDOW } from "./to-stream.ts";

test("without B-frames dts = pts; after the first units nothing is held back", () => {
  const d = new DecodeOrder<number>();
  const first = Array.from({ length: REORDER_WINDOW + 1 }, (_, i) => d.push(i, i * 40)).flat();
  assert.deepEqual(
    first,
    first.map((_, i) => ({ v: i, dts: i * 40, cts: 0 })),
  );
  assert.equal(first.length, REORDER_WINDOW + 1);
  for (let i = REORDER_WINDOW + 1; i < 10; i++) assert.deepEqual(d.push(i, i * 40), [{ v: i, dts: i * 40, cts: 0 }]);
  assert.equal(d.reordered, false);
});

test("B-frames (x264 B-pyramid order): monotonic dts, never after pts, every unit out in order", () => {
  // Presentation order I0 B1 B2 B3 P4 ..., sent in decode order I0 P4 B2 B1 B3 P8 B6 B5 B7 ...
  const sent: number[] = [0];
  for (let g = 0; g < 6; g++) sent.push(4 * g + 4, 4 * g + 2, 4 * g + 1, 4 * g + 3);
  const d = new DecodeOrder<number>();
  const out = sent.flatMap((n, i) => d.push(i, n * 40 + 80));
  assert.ok(d.reordered);
  assert.deepEqual(
    out.map((o) => o.v),
    sent.slice(0, out.length).map((_, i) => i),
  );
  assert.ok(out.length >= sent.length - REORDER_WINDOW);
  for (let i = 1; i < out.length; i++) assert.ok((out[i]?.dts ?? 0) >= (out[i - 1]?.dts ?? 0), "monotonic");
  for (const o of out) assert.ok(o.cts >= 0, `cts ${o.cts} of unit ${o.v}`);
});

test("an AAC track whose AU headers would read nothing (sizelength=0) is refused at ANNOUNCE", () => {
  const sdp = (fmtp: string) =>
    parseSdp(`v=0\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/48000/2\r\na=fmtp:97 config=1190;${fmtp}\r\n`);
  assert.throws(() => checkTracks(sdp("sizelength=0;indexlength=0;indexdeltalength=0")), /sizelength/);
  assert.throws(() => checkTracks(sdp("sizelength=33")), /sizelength/);
  checkTracks(sdp("sizelength=13;indexlength=3;indexdeltalength=3"));
  checkTracks(sdp("mode=AAC-hbr"));
});
