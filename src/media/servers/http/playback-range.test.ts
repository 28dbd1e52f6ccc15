import assert from "node:assert/strict";
import { test } from "node:test";
import type { Piece } from "../../playback.ts";
import { byteRange, slicePieces } from "./playback.ts";

test("Range: bytes= of a known length: first-last, open end, suffix; past the end 416; others ignored", () => {
  assert.deepEqual(byteRange("bytes=0-99", 1000), { from: 0, to: 99 });
  assert.deepEqual(byteRange("bytes=900-", 1000), { from: 900, to: 999 });
  assert.deepEqual(byteRange("bytes=900-5000", 1000), { from: 900, to: 999 }, "last-pos past the end is clipped");
  assert.deepEqual(byteRange("bytes=-100", 1000), { from: 900, to: 999 });
  assert.deepEqual(byteRange("bytes=-5000", 1000), { from: 0, to: 999 });
  assert.deepEqual(byteRange("BYTES = 5 - 9", 1000), { from: 5, to: 9 });
  assert.equal(byteRange("bytes=1000-", 1000), "unsatisfiable");
  assert.equal(byteRange("bytes=-0", 1000), "unsatisfiable");
  for (const ignored of [undefined, "", "bytes=", "bytes=-", "items=0-1", "bytes=0-1,5-6", "bytes=9-5", "bytes=a-b"])
    assert.equal(byteRange(ignored, 1000), undefined, String(ignored));
});

test("a slice of pieces: in-memory bytes cut, file ranges narrowed, nothing outside the range", () => {
  const src = {} as never;
  const list: Piece[] = [Buffer.from("0123456789"), { src, from: 100, to: 120 }, () => Buffer.from("abcde")];
  const flat = (ps: Piece[]) =>
    ps.map((p) => (Buffer.isBuffer(p) ? p.toString() : typeof p === "function" ? p().toString() : [p.from, p.to]));
  assert.deepEqual(flat(slicePieces(list, 0, 34)), ["0123456789", [100, 120], "abcde"]);
  assert.deepEqual(flat(slicePieces(list, 8, 11)), ["89", [100, 102]]);
  assert.deepEqual(flat(slicePieces(list, 12, 31)), [[102, 120], "ab"]);
  assert.deepEqual(flat(slicePieces(list, 34, 34)), ["e"]);
  assert.deepEqual(flat(slicePieces(list, 10, 29)), [[100, 120]]);
});
