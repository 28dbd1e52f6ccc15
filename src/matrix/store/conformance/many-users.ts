/**
 * Conformance: the many-users reads the WebSocket hub uses to build many connections' frames at once
 * (getReceiptsOfUsers, getUsers, getAccountDataOfUsers, keys.countOneTimeKeysMany,
 * keys.unusedFallbackKeyTypesMany) give exactly what their one-user counterparts give.
 */
import assert from "node:assert/strict";
import type { ReceiptRow, Store } from "../types.ts";
import { type MakeStore, receipt, storeTest, user } from "./helpers.ts";

const A = "!a:hs";
const B = "!b:hs";
const ALG = "signed_curve25519";
const BOB = "@bob:hs";
const ALICE = "@alice:hs";
const CAROL = "@carol:hs";

async function devices(s: Store, list: [string, string][]): Promise<void> {
  for (const u of new Set(list.map(([u]) => u))) await s.accounts.createUser(user(u));
  for (const [userId, deviceId] of list)
    await s.accounts.upsertDevice({
      userId,
      deviceId,
      displayName: null,
      createdTs: 1,
      lastSeenTs: null,
      lastSeenIp: null,
    });
}

export function manyUserTests(make: MakeStore): void {
  storeTest(
    make,
    "getReceiptsOfUsers: every asked user's receipts in the asked rooms, as getUserReceipts each",
    async (s) => {
      const rows: ReceiptRow[] = [
        receipt(20, A, BOB, "m.read", null),
        receipt(21, B, BOB, "m.read.private", "main"),
        receipt(22, A, ALICE, "m.read", null),
        receipt(23, A, BOB, "m.read", "$thread"),
        receipt(24, "!c:hs", BOB, "m.read", null),
        receipt(25, B, CAROL, "m.read", null),
      ];
      for (const r of rows) await s.ephemeral.setReceipt(r);
      const got = await s.ephemeral.getReceiptsOfUsers([CAROL, BOB, ALICE, "@nobody:hs"], [B, A, "!none:hs"]);
      const each = [
        ...(await s.ephemeral.getUserReceipts(ALICE, [A, B])),
        ...(await s.ephemeral.getUserReceipts(BOB, [A, B])),
        ...(await s.ephemeral.getUserReceipts(CAROL, [A, B])),
      ];
      assert.deepEqual(got, each);
      assert.deepEqual(got, [rows[2], rows[0], rows[3], rows[1], rows[5]]);
      assert.deepEqual(await s.ephemeral.getReceiptsOfUsers([], [A]), []);
      assert.deepEqual(await s.ephemeral.getReceiptsOfUsers([BOB], []), []);
    },
  );

  storeTest(make, "getUsers and getAccountDataOfUsers: the rows that exist, by user ID", async (s) => {
    await s.accounts.createUser(user(BOB, { displayname: "Bob" }));
    await s.accounts.createUser(user(ALICE));
    const got = await s.accounts.getUsers([BOB, "@nobody:hs", ALICE, BOB]);
    assert.deepEqual(got, [await s.accounts.getUser(ALICE), await s.accounts.getUser(BOB)]);
    assert.deepEqual(await s.accounts.getUsers([]), []);

    const ad = (userId: string, roomId: string | null, type: string, stream: number) =>
      s.accountData.setAccountData({ userId, roomId, type, content: { n: stream }, stream });
    await ad(BOB, null, "m.push_rules", 1);
    await ad(ALICE, A, "m.push_rules", 2); // a room's: not the global one asked for
    await ad(CAROL, null, "m.push_rules", 3);
    await ad(ALICE, null, "other", 4);
    const rules = await s.accountData.getAccountDataOfUsers([CAROL, ALICE, BOB], null, "m.push_rules");
    assert.deepEqual(rules, [
      await s.accountData.getAccountData(BOB, null, "m.push_rules"),
      await s.accountData.getAccountData(CAROL, null, "m.push_rules"),
    ]);
    assert.deepEqual(await s.accountData.getAccountDataOfUsers([ALICE], A, "m.push_rules"), [
      await s.accountData.getAccountData(ALICE, A, "m.push_rules"),
    ]);
    assert.deepEqual(await s.accountData.getAccountDataOfUsers([], null, "m.push_rules"), []);
  });

  storeTest(make, "keys: countOneTimeKeysMany and unusedFallbackKeyTypesMany match the one-device reads", async (s) => {
    await devices(s, [
      [ALICE, "D1"],
      [ALICE, "D2"],
      [BOB, "B1"],
    ]);
    const otk = (id: string, algorithm = ALG) => ({ keyId: `${algorithm}:${id}`, algorithm, key: { key: id } });
    await s.keys.addOneTimeKeys(ALICE, "D1", [otk("A"), otk("B"), otk("X", "curve25519")]);
    await s.keys.addOneTimeKeys(BOB, "B1", [otk("C")]);
    await s.keys.setFallbackKeys(ALICE, "D1", [{ ...otk("F"), key: { key: "f", fallback: true } }]);
    await s.keys.setFallbackKeys(BOB, "B1", [
      { ...otk("G"), key: { key: "g", fallback: true } },
      { ...otk("H", "curve25519"), key: { key: "h", fallback: true } },
    ]);
    await s.keys.claimKeys([{ userId: BOB, deviceId: "B1", algorithm: ALG }]);
    await s.keys.claimKeys([{ userId: BOB, deviceId: "B1", algorithm: ALG }]); // no OTK left: the fallback, used
    const asked = [
      { userId: BOB, deviceId: "B1" },
      { userId: ALICE, deviceId: "D1" },
      { userId: ALICE, deviceId: "D2" },
      { userId: "@nobody:hs", deviceId: "X" },
      { userId: ALICE, deviceId: "D1" },
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
