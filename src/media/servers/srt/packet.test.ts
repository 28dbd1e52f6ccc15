import assert from "node:assert/strict";
import { test } from "node:test";
import { control, decodeLoss, encodeLoss, LossList, seqAdd, seqDiff } from "./packet.ts";

test("31-bit sequence numbers wrap", () => {
  assert.equal(seqAdd(0x7fffffff, 1), 0);
  assert.equal(seqAdd(0, -1), 0x7fffffff);
  assert.equal(seqDiff(0x7ffffffe, 1), 3);
  assert.equal(seqDiff(1, 0x7ffffffe), -3);
  assert.equal(seqDiff(5, 5), 0);
});

test("NAK loss lists: ranges compressed with the top bit, singles alone, round trip", () => {
  const words = encodeLoss([
    [10, 10],
    [12, 20],
    [0x7ffffffe, 1],
  ]);
  assert.deepEqual(words, [10, (12 | 0x80000000) >>> 0, 20, (0x7ffffffe | 0x80000000) >>> 0, 1]);
  const nak = control(3, 0, 0, 7, words);
  assert.deepEqual(decodeLoss(nak), [
    [10, 10],
    [12, 20],
    [0x7ffffffe, 1],
  ]);
  assert.deepEqual(
    decodeLoss(Buffer.concat([nak.subarray(0, 16), Buffer.from([0x80, 0, 0, 5])])),
    [],
    "truncated range",
  );
});

test("the loss list: add at the end, remove anywhere (splitting), drop what is too late", () => {
  const l = new LossList();
  l.add(5, 9);
  l.add(10, 10);
  l.add(20, 22);
  assert.deepEqual(l.ranges, [
    [5, 10],
    [20, 22],
  ]);
  assert.equal(l.size, 9);
  assert.ok(l.remove(7));
  assert.deepEqual(l.ranges, [
    [5, 6],
    [8, 10],
    [20, 22],
  ]);
  assert.ok(l.remove(5) && l.remove(22) && !l.remove(15));
  l.dropBefore(9);
  assert.deepEqual(l.ranges, [
    [9, 10],
    [20, 21],
  ]);
  assert.equal(l.first, 9);
  assert.ok(l.has(21) && !l.has(11));
});
