import assert from "node:assert/strict";
import { test } from "node:test";
import { flvTag, TAG_VIDEO } from "./tag.ts";

test("flvTag writes every byte: type, size, timestamp with its extension, zero StreamID, body, PreviousTagSize", () => {
  // Dirty the pool first: the tag is not zero-filled, so every byte must be written.
  for (let i = 0; i < 64; i++) Buffer.allocUnsafe(4096).fill(0xff);
  for (const size of [3, 5000]) {
    const body = Buffer.alloc(size, 0xab);
    const tag = flvTag(TAG_VIDEO, 0x12345678, body);
    assert.equal(tag.length, 11 + size + 4);
    assert.equal(tag[0], TAG_VIDEO);
    assert.equal(tag.readUIntBE(1, 3), size);
    assert.equal(tag.readUIntBE(4, 3), 0x345678);
    assert.equal(tag[7], 0x12);
    assert.equal(tag.readUIntBE(8, 3), 0, "StreamID is always 0");
    assert.deepEqual(tag.subarray(11, 11 + size), body);
    assert.equal(tag.readUInt32BE(11 + size), 11 + size);
  }
});
