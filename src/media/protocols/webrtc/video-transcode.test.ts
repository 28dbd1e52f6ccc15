import assert from "node:assert/strict";
import { test } from "node:test";
import { avccNals, avcNaluFrame } from "./avc-tags.ts";
import { withRecoveryPoint } from "./video-transcode.ts";

test("a recovery point SEI goes in front of a frame's first slice (after AUD/SPS/PPS), nothing else moves", () => {
  const aud = Buffer.from([0x09, 0xf0]);
  const sps = Buffer.from([0x67, 0x42, 0xc0, 0x1e]);
  const slice = Buffer.from([0x41, 0x9a, 1, 2, 3]);
  const slice2 = Buffer.from([0x01, 0x9b, 4]);
  const f = avcNaluFrame(40, [aud, sps, slice, slice2], false);
  const marked = withRecoveryPoint(f.data, 5, 4);
  assert.ok(marked);
  assert.deepEqual(marked.subarray(0, 5), f.data.subarray(0, 5), "the tag header is kept");
  const nals = avccNals(marked.subarray(5), 4);
  assert.deepEqual(
    nals.map((n) => n[0]! & 0x1f),
    [9, 7, 6, 1, 1],
  );
  assert.deepEqual(nals[2], Buffer.from([0x06, 0x06, 0x01, 0x84, 0x80]), "SEI payload 6 (recovery point), size 1");
  assert.deepEqual(nals[3], slice);
  // No slice: nothing to mark.
  assert.equal(withRecoveryPoint(avcNaluFrame(0, [aud, sps], false).data, 5, 4), undefined);
});
