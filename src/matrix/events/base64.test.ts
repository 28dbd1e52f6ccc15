import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeBase64, unpaddedBase64, unpaddedBase64Url } from "./base64.ts";

test("spec appendix unpadded base64 examples", () => {
  const cases: Array<[string, string]> = [
    ["", ""],
    ["f", "Zg"],
    ["fo", "Zm8"],
    ["foo", "Zm9v"],
    ["foob", "Zm9vYg"],
    ["fooba", "Zm9vYmE"],
    ["foobar", "Zm9vYmFy"],
  ];
  for (const [raw, enc] of cases) {
    assert.equal(unpaddedBase64(Buffer.from(raw)), enc);
    assert.equal(decodeBase64(enc).toString(), raw);
  }
});

test("url-safe alphabet and subarray views", () => {
  const bytes = new Uint8Array([0xfb, 0xff, 0xbf, 0x00]);
  assert.equal(unpaddedBase64(bytes.subarray(0, 3)), "+/+/");
  assert.equal(unpaddedBase64Url(bytes.subarray(0, 3)), "-_-_");
});

test("decodes padded, unpadded and url-safe forms alike", () => {
  const want = Buffer.from([0xfb, 0xff, 0xbf, 0x01]);
  for (const s of ["+/+/AQ==", "+/+/AQ", "-_-_AQ", "-_-_AQ=="]) assert.deepEqual(decodeBase64(s), want, s);
});

test("rejects malformed base64 instead of decoding garbage", () => {
  for (const s of ["a", "ab!c", "abc=d", "Zg===", "Zg=", " Zg"])
    assert.throws(() => decodeBase64(s), /Invalid base64/, s);
});
