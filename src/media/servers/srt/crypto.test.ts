import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { ctr, KdfBudget, kekCached, openKm, sealKm } from "./crypto.ts";

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

test("key derivations are budgeted per second; a retransmitted KMREQ (cached KEK) costs none", () => {
  let now = 0;
  const b = new KdfBudget(10, () => now);
  let granted = 0;
  for (let i = 0; i < 100; i++) if (b.take()) granted++;
  assert.equal(granted, 10, "a burst gets the bucket");
  now += 500;
  granted = 0;
  for (let i = 0; i < 100; i++) if (b.take()) granted++;
  assert.equal(granted, 5, "then the rate");
  const km = { salt: randomBytes(16), even: randomBytes(16), odd: undefined, keyLen: 16 };
  const pass = "a passphrase";
  const msg = sealKm(km, pass);
  assert.equal(kekCached(msg, pass), true, "sealing derived it");
  assert.equal(kekCached(sealKm({ ...km, salt: randomBytes(16) }, "another one!"), "a third one!"), false);
  assert.equal(openKm(msg, pass).ok, true);
});
