/** Conformance: the AccountDataStore — account data and filters. */
import assert from "node:assert/strict";
import { type MakeStore, storeTest } from "./helpers.ts";

const R = "!room:hs";
const A = "!a:hs";
const ALICE = "@alice:hs";
const BOB = "@bob:hs";
const CAROL = "@carol:hs";

export function accountDataTests(make: MakeStore): void {
  storeTest(make, "account data: upsert per (user, room|global, type), read, since", async (s) => {
    const ad = (roomId: string | null, type: string, content: object, stream: number, userId = "@alice:hs") => ({
      userId,
      roomId,
      type,
      content,
      stream,
    });
    await s.accountData.setAccountData(ad(null, "m.push_rules", { v: 1 }, 1));
    await s.accountData.setAccountData(ad(R, "m.tag", { tags: {} }, 2));
    await s.accountData.setAccountData(ad(null, "m.tag", { global: true }, 3));
    await s.accountData.setAccountData(ad(null, "m.push_rules", { v: 1 }, 4, "@bob:hs"));
    assert.deepEqual(
      await s.accountData.getAccountData("@alice:hs", null, "m.push_rules"),
      ad(null, "m.push_rules", { v: 1 }, 1),
    );
    assert.deepEqual(await s.accountData.getAccountData("@alice:hs", R, "m.tag"), ad(R, "m.tag", { tags: {} }, 2));
    assert.deepEqual(
      await s.accountData.getAccountData("@alice:hs", null, "m.tag"),
      ad(null, "m.tag", { global: true }, 3),
    );
    assert.equal(await s.accountData.getAccountData("@alice:hs", R, "m.push_rules"), null);
    assert.equal(await s.accountData.getAccountData("@carol:hs", null, "m.push_rules"), null);

    await s.accountData.setAccountData(ad(null, "m.push_rules", { v: 2, nested: { "ü\u0000": [1] } }, 5));
    assert.deepEqual((await s.accountData.getAccountData("@alice:hs", null, "m.push_rules"))?.content, {
      v: 2,
      nested: { "ü\u0000": [1] },
    });
    const since = async (n: number, u = "@alice:hs") =>
      (await s.accountData.getAccountDataSince(u, n)).map((r) => `${r.roomId ?? "-"}/${r.type}@${r.stream}`).sort();
    assert.deepEqual(await since(0), [`${R}/m.tag@2`, "-/m.push_rules@5", "-/m.tag@3"].sort());
    assert.deepEqual(await since(2), ["-/m.push_rules@5", "-/m.tag@3"]);
    assert.deepEqual(await since(5), []);
    assert.deepEqual(await since(0, "@bob:hs"), ["-/m.push_rules@4"]);
  });

  storeTest(make, "filters: decimal IDs, per user, unknown or malformed IDs are null", async (s) => {
    const f = {
      room: { timeline: { limit: 10, types: ["m.room.*"] }, lazy_load_members: true },
      presence: { not_types: ["*"] },
    };
    const id1 = await s.accountData.createFilter("@alice:hs", f);
    const id2 = await s.accountData.createFilter("@alice:hs", {});
    const id3 = await s.accountData.createFilter("@bob:hs", { x: 1 });
    for (const id of [id1, id2, id3]) assert.match(id, /^[0-9]+$/);
    assert.equal(new Set([id1, id2, id3]).size, 3);
    assert.deepEqual(await s.accountData.getFilter("@alice:hs", id1), f);
    assert.deepEqual(await s.accountData.getFilter("@alice:hs", id2), {});
    assert.equal(await s.accountData.getFilter("@bob:hs", id1), null, "another user's filter is not visible");
    for (const bad of ["", "abc", "-1", "1.5", "99999999999999999999999", "1; DROP TABLE filters", " 1"])
      assert.equal(await s.accountData.getFilter("@alice:hs", bad), null, `filter id ${JSON.stringify(bad)}`);
    assert.equal(await s.accountData.getFilter("@alice:hs", "424242"), null);
  });

  storeTest(make, "getAccountDataOfUsers: the rows that exist, by user ID", async (s) => {
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
}
