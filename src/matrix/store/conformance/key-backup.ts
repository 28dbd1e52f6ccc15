/** Conformance: the KeyBackupStore — versions, the better-key rule, etag and count, wrong versions. */
import assert from "node:assert/strict";
import type { BackupKeyData } from "../keys-types.ts";
import { type MakeStore, storeTest } from "./helpers.ts";

const A = "@alice:hs";
const B = "@bob:hs";

const bk = (over: Partial<BackupKeyData> = {}): BackupKeyData => ({
  first_message_index: 5,
  forwarded_count: 1,
  is_verified: false,
  session_data: { ciphertext: "c", ephemeral: "e", mac: "m" },
  ...over,
});

export function keyBackupTests(make: MakeStore): void {
  storeTest(make, "key backup: versions, better-key rule, etag and count, wrong versions", async (s) => {
    assert.equal(await s.keyBackup.getBackupVersion(A, null), null);
    const v1 = await s.keyBackup.createBackupVersion(A, "m.megolm_backup.v1.curve25519-aes-sha2", { public_key: "p1" });
    const v2 = await s.keyBackup.createBackupVersion(A, "m.megolm_backup.v1.curve25519-aes-sha2", { public_key: "p2" });
    assert.notEqual(v1, v2);
    assert.equal((await s.keyBackup.getBackupVersion(A, null))?.version, v2);
    assert.equal((await s.keyBackup.getBackupVersion(A, v1))?.authData.public_key, "p1");
    assert.equal(await s.keyBackup.getBackupVersion(B, v1), null);
    assert.equal(await s.keyBackup.getBackupVersion(A, "nope"), null);

    assert.deepEqual(await s.keyBackup.putBackupKeys(A, v1, []), { ok: false, reason: "wrong_version", current: v2 });
    assert.deepEqual(await s.keyBackup.putBackupKeys(B, "1", []), { ok: false, reason: "not_found" });
    const r1 = await s.keyBackup.putBackupKeys(A, v2, [
      { roomId: "!r:hs", sessionId: "s1", data: bk() },
      { roomId: "!r:hs", sessionId: "s2", data: bk() },
      { roomId: "!q:hs", sessionId: "s1", data: bk() },
    ]);
    assert.ok(r1.ok && r1.count === 3);
    const worse = await s.keyBackup.putBackupKeys(A, v2, [
      { roomId: "!r:hs", sessionId: "s1", data: bk({ first_message_index: 9 }) },
    ]);
    assert.ok(worse.ok && r1.ok && worse.etag === r1.etag, "a worse key changes nothing");
    const better = await s.keyBackup.putBackupKeys(A, v2, [
      { roomId: "!r:hs", sessionId: "s1", data: bk({ is_verified: true, first_message_index: 9 }) },
    ]);
    assert.ok(better.ok && r1.ok && better.etag !== r1.etag && better.count === 3);
    assert.equal((await s.keyBackup.getBackupKeys(A, v2, "!r:hs", "s1"))[0].data.is_verified, true);
    assert.deepEqual(
      (await s.keyBackup.getBackupKeys(A, v2, "!r:hs")).map((k) => k.sessionId),
      ["s1", "s2"],
    );
    assert.equal((await s.keyBackup.getBackupKeys(A, v2)).length, 3);
    assert.equal((await s.keyBackup.getBackupVersion(A, v2))?.count, 3);

    const del = await s.keyBackup.deleteBackupKeys(A, v2, "!r:hs", "s2");
    assert.ok(del.ok && del.count === 2);
    const delRoom = await s.keyBackup.deleteBackupKeys(A, v2, "!r:hs");
    assert.ok(delRoom.ok && delRoom.count === 1);
    assert.deepEqual(await s.keyBackup.deleteBackupKeys(A, "77"), { ok: false, reason: "not_found" });
    assert.equal(await s.keyBackup.updateBackupVersion(A, v2, { public_key: "p3" }), true);
    assert.equal((await s.keyBackup.getBackupVersion(A, v2))?.authData.public_key, "p3");
    assert.equal(await s.keyBackup.updateBackupVersion(A, "77", {}), false);
    assert.equal(await s.keyBackup.deleteBackupVersion(A, v2), true);
    assert.equal(await s.keyBackup.deleteBackupVersion(A, v2), false);
    assert.equal(
      (await s.keyBackup.getBackupVersion(A, null))?.version,
      v1,
      "the previous version is the latest again",
    );
    const v3 = await s.keyBackup.createBackupVersion(A, "m.megolm_backup.v1.curve25519-aes-sha2", {});
    assert.ok(Number(v3) > Number(v2), "version numbers are never reused");
  });
}
