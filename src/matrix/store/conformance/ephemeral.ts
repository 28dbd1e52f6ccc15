/** Conformance: the EphemeralStore — read receipts and presence, one user and many at once. */
import assert from "node:assert/strict";
import type { ReceiptRow } from "../types.ts";
import { type MakeStore, receipt, storeTest } from "./helpers.ts";

const R = "!room:hs";
const A = "!a:hs";
const B = "!b:hs";
const C = "!c:hs";
const NONE = "!none:hs";
const ALICE = "@alice:hs";
const BOB = "@bob:hs";
const CAROL = "@carol:hs";

export function ephemeralTests(make: MakeStore): void {
  storeTest(make, "receipts: upsert by (room, user, type, thread), since", async (s) => {
    const rc = (
      roomId: string,
      userId: string,
      type: string,
      threadId: string | null,
      eventId: string,
      stream: number,
    ) => ({
      roomId,
      userId,
      type,
      eventId,
      threadId,
      ts: 1000 + stream,
      stream,
    });
    await s.ephemeral.setReceipt(rc(R, "@alice:hs", "m.read", null, "$1", 1));
    await s.ephemeral.setReceipt(rc(R, "@alice:hs", "m.read", "main", "$2", 2));
    await s.ephemeral.setReceipt(rc(R, "@alice:hs", "m.read.private", null, "$3", 3));
    await s.ephemeral.setReceipt(rc(R, "@bob:hs", "m.read", null, "$3", 4));
    await s.ephemeral.setReceipt(rc("!b:hs", "@alice:hs", "m.read", null, "$9", 5));
    await s.ephemeral.setReceipt(rc(R, "@alice:hs", "m.read", null, "$4", 6)); // moves alice's unthreaded receipt
    assert.deepEqual(
      await s.ephemeral.getReceipt(R, "@alice:hs", "m.read", null),
      rc(R, "@alice:hs", "m.read", null, "$4", 6),
    );
    assert.deepEqual(
      await s.ephemeral.getReceipt(R, "@alice:hs", "m.read", "main"),
      rc(R, "@alice:hs", "m.read", "main", "$2", 2),
    );
    assert.equal(await s.ephemeral.getReceipt(R, "@alice:hs", "m.read", "$thread"), null);
    assert.equal(await s.ephemeral.getReceipt(R, "@carol:hs", "m.read", null), null);
    const since = async (rooms: string[], n: number) =>
      (await s.ephemeral.getReceiptsSince(rooms, n))
        .map((r) => `${r.userId}/${r.type}/${r.threadId}=${r.eventId}@${r.stream}`)
        .sort();
    assert.deepEqual(await since([R], 0), [
      "@alice:hs/m.read.private/null=$3@3",
      "@alice:hs/m.read/main=$2@2",
      "@alice:hs/m.read/null=$4@6",
      "@bob:hs/m.read/null=$3@4",
    ]);
    assert.deepEqual(await since([R], 3), ["@alice:hs/m.read/null=$4@6", "@bob:hs/m.read/null=$3@4"]);
    assert.deepEqual(await since([R, "!b:hs"], 4), ["@alice:hs/m.read/null=$4@6", "@alice:hs/m.read/null=$9@5"]);
    assert.deepEqual(await since([], 0), []);
    assert.deepEqual(await since(["!none:hs"], 0), []);
  });

  storeTest(make, "presence: upsert, get, since", async (s) => {
    const p = (userId: string, presence: string, stream: number, statusMsg: string | null = null) => ({
      userId,
      presence,
      statusMsg,
      lastActiveTs: 500 + stream,
      stream,
    });
    await s.ephemeral.setPresence(p("@alice:hs", "online", 1, "hi"));
    await s.ephemeral.setPresence(p("@bob:hs", "unavailable", 2));
    await s.ephemeral.setPresence(p("@carol:hs", "online", 3));
    await s.ephemeral.setPresence(p("@alice:hs", "offline", 4));
    assert.deepEqual(await s.ephemeral.getPresence("@alice:hs"), p("@alice:hs", "offline", 4));
    assert.equal(await s.ephemeral.getPresence("@dan:hs"), null);
    const since = async (users: string[], n: number) =>
      (await s.ephemeral.getPresenceSince(users, n)).map((r) => r.userId).sort();
    assert.deepEqual(await since(["@alice:hs", "@bob:hs", "@dan:hs"], 0), ["@alice:hs", "@bob:hs"]);
    assert.deepEqual(await since(["@alice:hs", "@bob:hs", "@carol:hs"], 2), ["@alice:hs", "@carol:hs"]);
    assert.deepEqual(await since([], 0), []);
  });

  storeTest(make, "getUserReceipts: one user's receipts of every type and thread in the rooms asked for", async (s) => {
    const r = receipt;
    const rows = [
      r(20, A, "@bob:hs", "m.read", null),
      r(21, B, "@bob:hs", "m.read.private", "main"),
      r(22, A, "@alice:hs", "m.read", null),
      r(23, A, "@bob:hs", "m.read", "$thread"),
      r(24, C, "@bob:hs", "m.read", null),
      r(25, A, "@bob:hs", "m.read.private", null),
    ];
    for (const row of rows) await s.ephemeral.setReceipt(row);
    assert.deepEqual(await s.ephemeral.getUserReceipts("@bob:hs", [B, A, NONE]), [rows[0], rows[3], rows[5], rows[1]]);
    assert.deepEqual(await s.ephemeral.getUserReceipts("@alice:hs", [A, B, C]), [rows[2]]);
    assert.deepEqual(await s.ephemeral.getUserReceipts("@bob:hs", []), []);
    assert.deepEqual(await s.ephemeral.getUserReceipts("@nobody:hs", [A, B, C]), []);
  });

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
}
