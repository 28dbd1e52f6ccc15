import assert from "node:assert/strict";
import { test } from "node:test";
import { children, parseInit, parseMoof } from "./boxes.ts";
import { fragment, ftyp, moov } from "./mux.ts";
import { trackInit, trackSegment, trackSlice } from "./split.ts";
import { fakeTrack } from "./testing.ts";

const TRACKS = [fakeTrack("video", 90000), fakeTrack("audio", 48000)];

/** Two muxed fragments; track 1's samples are bytes 1.., track 2's bytes 200.. so a mix-up shows. */
function muxed(): Buffer {
  const frags = [0, 1].map((k) => {
    const v = {
      baseTime: k * 3600,
      samples: [{ data: Buffer.from([1, k]), duration: 3600, cts: 0, sync: true }],
      withCts: true,
    };
    const a = {
      baseTime: k * 1920,
      samples: [0, 1].map((i) => ({ data: Buffer.from([200, k, i]), duration: 960, cts: 0, sync: true })),
      withCts: false,
    };
    const { moof, mdat } = fragment(k + 1, [v, a]);
    return Buffer.concat([moof, mdat]);
  });
  return Buffer.concat(frags);
}

test("a muxed segment splits into single-track fragments whose data offsets point at the right bytes", () => {
  const data = muxed();
  const tracks = parseInit(moov(TRACKS));
  for (const [id, want] of [
    [1, [Buffer.from([1, 0]), Buffer.from([1, 1])]],
    [2, [Buffer.from([200, 0, 0, 200, 0, 1]), Buffer.from([200, 1, 0, 200, 1, 1])]],
  ] as const) {
    const out = trackSegment(data, id);
    const boxes = children(out, 0, out.length);
    assert.deepEqual(
      boxes.map((b) => b.type),
      ["moof", "mdat", "moof", "mdat"],
    );
    boxes.forEach((b, i) => {
      if (b.type !== "moof") return;
      const moofBuf = out.subarray(b.start - 8, b.end);
      const info = parseMoof(moofBuf, tracks);
      assert.deepEqual(
        info.map((x) => x.trackId),
        [id],
      );
      // trun data_offset (relative to the moof) lands on the mdat payload, which holds only this track.
      const traf = children(moofBuf, 8, moofBuf.length).find((c) => c.type === "traf");
      const trun = traf && children(moofBuf, traf.start, traf.end).find((c) => c.type === "trun");
      const offset = moofBuf.readInt32BE((trun?.start ?? 0) + 8);
      const mdat = boxes[i + 1];
      assert.equal(offset, (mdat?.start ?? 0) - (b.start - 8));
      assert.deepEqual(out.subarray(mdat?.start, mdat?.end), want[i / 2]);
    });
  }
  assert.deepEqual(trackSlice(data, 2), { t: 0, d: 3840, bytes: 12, samples: 4 });
  assert.equal(trackSlice(data, 3), undefined);
});

test("a single-track init keeps that trak and trex only and claims the CMAF brand", () => {
  const init = Buffer.concat([ftyp(), moov(TRACKS)]);
  assert.equal(init.includes("cmfc"), false, "the muxed init is no CMAF header");
  const audio = trackInit(init, 2);
  assert.equal(audio.includes("cmfc"), true);
  const m = children(audio, 0, audio.length).find((c) => c.type === "moov");
  assert.ok(m);
  const parsed = parseInit(audio.subarray(m.start - 8, m.end));
  assert.deepEqual(
    parsed.map((t) => [t.id, t.kind, t.timescale]),
    [[2, "audio", 48000]],
  );
  const mvex = children(audio, m.start, m.end).find((c) => c.type === "mvex");
  assert.equal(children(audio, mvex?.start ?? 0, mvex?.end ?? 0).length, 1, "one trex");
  assert.throws(() => trackInit(init, 7), /no track 7/);
  assert.throws(() => trackInit(Buffer.from("garbage!"), 1), /without moov/);
});
