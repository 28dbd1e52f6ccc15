import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { ctr, openKm, sealKm } from "./crypto.ts";

for (const keyLen of [16, 24, 32]) {
  test(`key material (AES-${keyLen * 8}): wrapped with the passphrase, opened with it, refused with another`, () => {
    const km = { salt: randomBytes(16), even: randomBytes(keyLen), odd: undefined, keyLen };
    const msg = sealKm(km, "correct horse battery");
    assert.equal(msg.length, 16 + 16 + keyLen + 8);
    const r = openKm(msg, "correct horse battery");
    assert.ok(r.ok);
    assert.deepEqual(r.km.even, km.even);
    const wrong = openKm(msg, "incorrect horse battery");
    assert.ok(!wrong.ok && wrong.badSecret);
    const payload = randomBytes(1316);
    const enc = ctr(km, 1, 12345, payload) as Buffer;
    assert.notDeepEqual(enc, payload);
    assert.deepEqual(ctr(r.km, 1, 12345, enc), payload, "CTR decrypts what it encrypted");
    assert.notDeepEqual(ctr(r.km, 1, 12346, enc), payload, "the IV follows the sequence number");
    assert.equal(ctr(r.km, 2, 12345, enc), undefined, "no odd key");
  });
}

test("malformed key material is refused without a secret being blamed", () => {
  const r = openKm(randomBytes(40), "correct horse battery");
  assert.ok(!r.ok && !r.badSecret);
});
