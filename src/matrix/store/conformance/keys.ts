/** Conformance: the KeyStore (end-to-end encryption) — keys, claims, cross-signing, device lists, to-device. */
import assert from "node:assert/strict";
import { type MakeStore, rejectsWith, storeTest, withDevices } from "./helpers.ts";

const A = "@alice:hs";
const B = "@bob:hs";
const ALG = "signed_curve25519";

const otk = (id: string, key: unknown = { key: `k${id}`, signatures: {} }) => ({
  keyId: `${ALG}:${id}`,
  algorithm: ALG,
  key,
});

export function keyTests(make: MakeStore): void {
  storeTest(make, "keys: device keys are replaced per device; deleted devices drop out", async (s) => {
    await withDevices(s, [
      [A, "D1"],
      [A, "D2"],
      [B, "B1"],
    ]);
    await s.keys.setDeviceKeys(A, "D1", { v: 1 });
    await s.keys.setDeviceKeys(A, "D1", { v: 2, "ü\u0000": true });
    await s.keys.setDeviceKeys(A, "D2", { v: 3 });
    await s.keys.setDeviceKeys(B, "B1", { v: 4 });
    assert.deepEqual(await s.keys.getDeviceKeys([A]), [
      { userId: A, deviceId: "D1", keys: { v: 2, "ü\u0000": true } },
      { userId: A, deviceId: "D2", keys: { v: 3 } },
    ]);
    assert.deepEqual(await s.keys.getDeviceKeys([]), []);
    await s.accounts.deleteDevice(A, "D2");
    assert.deepEqual(
      (await s.keys.getDeviceKeys([A, B, "@nobody:hs"])).map((r) => r.deviceId),
      ["D1", "B1"],
    );
    await s.keys.deleteDeviceKeys(A, "D1");
    assert.deepEqual(await s.keys.getDeviceKeys([A]), []);
  });

  storeTest(make, "keys: one-time keys are counted, never replaced silently, claimed once each", async (s) => {
    await withDevices(s, [[A, "D1"]]);
    await s.keys.addOneTimeKeys(A, "D1", [
      otk("AAAB"),
      otk("AAAA"),
      { keyId: "curve25519:X", algorithm: "curve25519", key: "x" },
    ]);
    // Same ID, same key (in another key order): a harmless re-upload.
    await s.keys.addOneTimeKeys(A, "D1", [otk("AAAA", { signatures: {}, key: "kAAAA" })]);
    assert.deepEqual(await s.keys.countOneTimeKeys(A, "D1"), { [ALG]: 2, curve25519: 1 });
    await rejectsWith(s.keys.addOneTimeKeys(A, "D1", [otk("AAAC"), otk("AAAA", "other")]), "M_INVALID_PARAM");
    assert.deepEqual(await s.keys.countOneTimeKeys(A, "D1"), { [ALG]: 2, curve25519: 1 }, "all or nothing");

    const c = { userId: A, deviceId: "D1", algorithm: ALG };
    const first = await s.keys.claimKeys([c, { userId: B, deviceId: "X", algorithm: ALG }]);
    assert.deepEqual(first, [
      { userId: A, deviceId: "D1", keyId: `${ALG}:AAAA`, key: { key: "kAAAA", signatures: {} } },
    ]);
    assert.equal((await s.keys.claimKeys([c]))[0].keyId, `${ALG}:AAAB`);
    assert.deepEqual(await s.keys.claimKeys([c]), [], "exhausted, no fallback key");
    assert.deepEqual(await s.keys.countOneTimeKeys(A, "D1"), { curve25519: 1 });
    assert.deepEqual(await s.keys.countOneTimeKeys(A, "D9"), {});
  });

  storeTest(make, "keys: fallback keys are handed out when one-time keys run out, and marked used", async (s) => {
    await withDevices(s, [[A, "D1"]]);
    const fb = { keyId: `${ALG}:F1`, algorithm: ALG, key: { key: "f1", fallback: true } };
    await s.keys.setFallbackKeys(A, "D1", [fb]);
    assert.deepEqual(await s.keys.unusedFallbackKeyTypes(A, "D1"), [ALG]);
    await s.keys.addOneTimeKeys(A, "D1", [otk("AAAA")]);
    const c = { userId: A, deviceId: "D1", algorithm: ALG };
    assert.equal((await s.keys.claimKeys([c]))[0].keyId, `${ALG}:AAAA`);
    assert.deepEqual(await s.keys.unusedFallbackKeyTypes(A, "D1"), [ALG], "an OTK was there: fallback untouched");
    assert.deepEqual(await s.keys.claimKeys([c]), [{ userId: A, deviceId: "D1", keyId: fb.keyId, key: fb.key }]);
    assert.deepEqual(await s.keys.unusedFallbackKeyTypes(A, "D1"), []);
    assert.equal((await s.keys.claimKeys([c]))[0].keyId, fb.keyId, "a used fallback key is still handed out");
    await s.keys.setFallbackKeys(A, "D1", [fb]);
    assert.deepEqual(await s.keys.unusedFallbackKeyTypes(A, "D1"), [], "re-uploading the same key keeps it used");
    await s.keys.setFallbackKeys(A, "D1", [{ ...fb, keyId: `${ALG}:F2`, key: { key: "f2" } }]);
    assert.deepEqual(await s.keys.unusedFallbackKeyTypes(A, "D1"), [ALG]);
  });

  storeTest(make, "keys: concurrent claims never return the same one-time key", async (s, h) => {
    await withDevices(s, [[A, "D1"]]);
    const n = 30;
    await s.keys.addOneTimeKeys(
      A,
      "D1",
      Array.from({ length: n }, (_, i) => otk(`K${String(i).padStart(3, "0")}`)),
    );
    const s2 = await h.reopen();
    const c = { userId: A, deviceId: "D1", algorithm: ALG };
    const results = await Promise.all(Array.from({ length: n + 10 }, (_, i) => (i % 2 ? s : s2).keys.claimKeys([c])));
    const got = results.flat().map((r) => r.keyId);
    assert.equal(got.length, n, "every key handed out, extra claims get nothing");
    assert.equal(new Set(got).size, n, "no key handed out twice");
  });

  storeTest(make, "keys: cross-signing keys and signatures", async (s) => {
    await s.keys.setCrossSigningKeys(A, { master: { k: "m1" }, self_signing: { k: "s1" } });
    await s.keys.setCrossSigningKeys(A, { master: { k: "m2" }, user_signing: { k: "u1" } });
    await s.keys.setCrossSigningKeys(B, { master: { k: "bm" } });
    assert.deepEqual(await s.keys.getCrossSigningKeys([A]), [
      { userId: A, type: "master", key: { k: "m2" } },
      { userId: A, type: "self_signing", key: { k: "s1" } },
      { userId: A, type: "user_signing", key: { k: "u1" } },
    ]);
    assert.deepEqual((await s.keys.getCrossSigningKeys([B, "@x:hs"])).length, 1);
    const sig = { targetUserId: A, targetKeyId: "D1", signerUserId: A, signerKeyId: "ed25519:SSK", signature: "s" };
    await s.keys.addKeySignatures([sig, { ...sig, targetUserId: B, targetKeyId: "bm", signerKeyId: "ed25519:USK" }]);
    await s.keys.addKeySignatures([{ ...sig, signature: "s2" }]);
    assert.deepEqual(await s.keys.getKeySignatures([A]), [{ ...sig, signature: "s2" }]);
    assert.equal((await s.keys.getKeySignatures([B])).length, 1);
    await s.keys.deleteDeviceKeys(A, "D1");
    assert.deepEqual(await s.keys.getKeySignatures([A]), [], "signatures of a deleted device go with it");
  });

  storeTest(make, "keys: device-list changes by stream range; the stream survives in getMaxStream", async (s) => {
    await s.keys.markDeviceListsChanged([A, B, A], 3);
    await s.keys.markDeviceListsChanged([B], 7);
    assert.deepEqual(await s.keys.getDeviceListChanges(0, 10), [A, B]);
    assert.deepEqual(await s.keys.getDeviceListChanges(3, 10), [B]);
    assert.deepEqual(await s.keys.getDeviceListChanges(0, 6), [A]);
    await s.keys.markDeviceListsChanged([B], 5);
    assert.deepEqual(await s.keys.getDeviceListChanges(6, 10), [B], "a change never moves backwards");
    assert.equal(await s.getMaxStream(), 7);
  });

  storeTest(make, "to-device: fan-out to existing devices, txn idempotency, ack by stream", async (s, h) => {
    await withDevices(s, [
      [A, "A1"],
      [B, "B1"],
      [B, "B2"],
    ]);
    const from = { userId: A, deviceId: "A1", txnId: "t1" };
    const msgs = [
      { userId: B, deviceId: "*", type: "m.test", content: { n: 1 } },
      { userId: A, deviceId: "NOPE", type: "m.test", content: { n: 2 } },
      { userId: "@ghost:hs", deviceId: "*", type: "m.test", content: { n: 3 } },
    ];
    assert.equal(await s.keys.addToDeviceMessages(from, msgs, 10), true);
    assert.equal(await s.keys.addToDeviceMessages(from, msgs, 11), false, "same txnId: nothing queued");
    assert.equal(
      await s.keys.addToDeviceMessages(
        { ...from, txnId: "t2" },
        [{ ...msgs[0], deviceId: "B2", content: { n: 4 } }],
        12,
      ),
      true,
    );
    const row = (stream: number, n: number) => ({ stream, sender: A, type: "m.test", content: { n } });
    assert.deepEqual(await s.keys.takeToDeviceMessages(B, "B1", 0, 20), [row(10, 1)]);
    assert.deepEqual(await s.keys.takeToDeviceMessages(B, "B2", 0, 11), [row(10, 1)], "bounded by upto");
    assert.deepEqual(await s.keys.takeToDeviceMessages(B, "B2", 0, 20), [row(10, 1), row(12, 4)], "not yet acked");
    assert.deepEqual(await s.keys.takeToDeviceMessages(B, "B2", 10, 20), [row(12, 4)]);
    assert.deepEqual(await s.keys.takeToDeviceMessages(B, "B2", 12, 20), []);
    assert.deepEqual(await s.keys.takeToDeviceMessages(A, "A1", 0, 20), []);
    // Delivered rows are gone, yet their stream positions must never be handed out again after a restart.
    await s.keys.takeToDeviceMessages(B, "B1", 20, 20);
    assert.equal(await (await h.reopen()).getMaxStream(), 12);
    await s.keys.addToDeviceMessages({ ...from, txnId: "t3" }, [msgs[0]], 13);
    await s.accounts.deleteDevice(B, "B1");
    await s.keys.deleteDeviceKeys(B, "B1");
    assert.deepEqual(await s.keys.takeToDeviceMessages(B, "B1", 0, 20), [], "a deleted device's inbox is dropped");
  });

  storeTest(make, "keys: countOneTimeKeysMany and unusedFallbackKeyTypesMany match the one-device reads", async (s) => {
    await withDevices(s, [
      [A, "D1"],
      [A, "D2"],
      [B, "B1"],
    ]);
    const otk = (id: string, algorithm = ALG) => ({ keyId: `${algorithm}:${id}`, algorithm, key: { key: id } });
    await s.keys.addOneTimeKeys(A, "D1", [otk("A"), otk("B"), otk("X", "curve25519")]);
    await s.keys.addOneTimeKeys(B, "B1", [otk("C")]);
    await s.keys.setFallbackKeys(A, "D1", [{ ...otk("F"), key: { key: "f", fallback: true } }]);
    await s.keys.setFallbackKeys(B, "B1", [
      { ...otk("G"), key: { key: "g", fallback: true } },
      { ...otk("H", "curve25519"), key: { key: "h", fallback: true } },
    ]);
    await s.keys.claimKeys([{ userId: B, deviceId: "B1", algorithm: ALG }]);
    await s.keys.claimKeys([{ userId: B, deviceId: "B1", algorithm: ALG }]); // no OTK left: the fallback, used
    const asked = [
      { userId: B, deviceId: "B1" },
      { userId: A, deviceId: "D1" },
      { userId: A, deviceId: "D2" },
      { userId: "@nobody:hs", deviceId: "X" },
      { userId: A, deviceId: "D1" },
    ];
    const counts = await s.keys.countOneTimeKeysMany(asked);
    const fallback = await s.keys.unusedFallbackKeyTypesMany(asked);
    const each = await Promise.all(asked.map((d) => s.keys.countOneTimeKeys(d.userId, d.deviceId)));
    const eachFallback = await Promise.all(asked.map((d) => s.keys.unusedFallbackKeyTypes(d.userId, d.deviceId)));
    assert.deepEqual(counts, each);
    assert.deepEqual(fallback, eachFallback);
    assert.deepEqual(counts, [{}, { [ALG]: 2, curve25519: 1 }, {}, {}, { [ALG]: 2, curve25519: 1 }]);
    assert.deepEqual(fallback, [["curve25519"], [ALG], [], [], [ALG]]);
    assert.deepEqual(await s.keys.countOneTimeKeysMany([]), []);
    assert.deepEqual(await s.keys.unusedFallbackKeyTypesMany([]), []);
  });
}
