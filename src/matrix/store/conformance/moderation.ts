/**
 * Conformance: what the admin API's moderation reads and writes — content reports (ReportStore), the admin user
 * listing (filters, orders, pages), blocked rooms, and media listing, quarantine and deletion.
 */
import assert from "node:assert/strict";
import type { ReportRow } from "../types.ts";
import { type MakeStore, storeTest, user } from "./helpers.ts";

const report = (over: Partial<ReportRow>): Omit<ReportRow, "id"> => ({
  kind: "event",
  receivedTs: 1000,
  userId: "@a:hs",
  roomId: "!r:hs",
  eventId: "$e",
  targetUserId: null,
  reason: "spam",
  score: -100,
  ...over,
});

export function moderationTests(make: MakeStore): void {
  storeTest(make, "reports: ids increase, kinds apart, filters, pages both ways, total, delete", async (s) => {
    const a = await s.reports.addReport(report({}));
    const b = await s.reports.addReport(report({ userId: "@b:hs", roomId: "!q:hs", reason: null, score: null }));
    const c = await s.reports.addReport(report({ eventId: "$f" }));
    const u = await s.reports.addReport(
      report({ kind: "user", roomId: null, eventId: null, targetUserId: "@bad:hs", score: null }),
    );
    assert.ok(a < b && b < c && c < u);
    assert.deepEqual(await s.reports.getReport("event", b), {
      ...report({ userId: "@b:hs", roomId: "!q:hs", reason: null, score: null }),
      id: b,
    });
    assert.equal(await s.reports.getReport("user", a), null, "a report is found under its own kind only");
    const list = async (q: Partial<Parameters<typeof s.reports.listReports>[0]>) => {
      const r = await s.reports.listReports({ kind: "event", offset: 0, limit: 10, dir: "b", ...q });
      return { ids: r.rows.map((x) => x.id), total: r.total };
    };
    assert.deepEqual(await list({}), { ids: [c, b, a], total: 3 });
    assert.deepEqual(await list({ dir: "f", offset: 1, limit: 1 }), { ids: [b], total: 3 });
    assert.deepEqual(await list({ userId: "@a:hs" }), { ids: [c, a], total: 2 });
    assert.deepEqual(await list({ roomId: "!q:hs" }), { ids: [b], total: 1 });
    assert.deepEqual(await list({ kind: "user", targetUserId: "@bad:hs" }), { ids: [u], total: 1 });
    assert.equal(await s.reports.deleteReport("user", a), false);
    assert.equal(await s.reports.deleteReport("event", a), true);
    assert.equal(await s.reports.deleteReport("event", a), false);
    assert.deepEqual(await list({}), { ids: [c, b], total: 2 });
  });

  storeTest(
    make,
    "users: admin listing filters (name, user ID, guests, admins, deactivated), orders, pages",
    async (s) => {
      await s.accounts.createUser(user("@alice:hs", { displayname: "Wonder", createdTs: 3, admin: true }));
      await s.accounts.createUser(user("@bob:hs", { displayname: "Builder 100%", createdTs: 1 }));
      await s.accounts.createUser(user("@carol:hs", { createdTs: 2, isGuest: true }));
      await s.accounts.createUser(user("@dave:hs", { createdTs: 4 }));
      await s.accounts.updateUser("@dave:hs", { deactivated: true, shadowBanned: true });
      const q = async (over: Partial<Parameters<typeof s.accounts.queryUsers>[0]> = {}) => {
        const r = await s.accounts.queryUsers({ filter: {}, order: "name", dir: "f", offset: 0, limit: 10, ...over });
        return [r.rows.map((u) => u.userId.slice(1, 2)).join(""), r.total];
      };
      assert.deepEqual(await q(), ["abc", 3]);
      assert.deepEqual(await q({ filter: { includeDeactivated: true } }), ["abcd", 4]);
      assert.deepEqual(await q({ filter: { includeDeactivated: true }, order: "creation_ts", dir: "b" }), ["dacb", 4]);
      assert.deepEqual(await q({ filter: { guests: false } }), ["ab", 2]);
      assert.deepEqual(await q({ filter: { admins: true } }), ["a", 1]);
      assert.deepEqual(await q({ filter: { admins: false } }), ["bc", 2]);
      assert.deepEqual(await q({ filter: { name: "WONDER" } }), ["a", 1], "name matches display names, any case");
      assert.deepEqual(await q({ filter: { name: "AR" } }), ["c", 1], "and user IDs");
      assert.deepEqual(
        await q({ filter: { name: "hs", serverName: "hs" } }),
        ["", 0],
        "localparts only, given the server",
      );
      assert.deepEqual(await q({ filter: { name: "ce:h", serverName: "hs" } }), ["", 0]);
      assert.deepEqual(await q({ filter: { name: "LIC", serverName: "hs" } }), ["a", 1]);
      assert.deepEqual(await q({ filter: { name: "0%" } }), ["b", 1], "LIKE wildcards are literal");
      assert.deepEqual(await q({ filter: { name: "_" } }), ["", 0]);
      assert.deepEqual(await q({ filter: { userIdLike: "o" } }), ["bc", 2]);
      assert.deepEqual(await q({ order: "displayname" }), ["cba", 3], "no display name sorts first");
      assert.deepEqual(await q({ offset: 1, limit: 1 }), ["b", 3]);
      assert.deepEqual(await q({ filter: { includeDeactivated: true }, order: "shadow_banned", dir: "b", limit: 1 }), [
        "d",
        4,
      ]);
      assert.equal((await s.accounts.getUser("@dave:hs"))?.shadowBanned, true);
      assert.equal((await s.accounts.getUser("@alice:hs"))?.shadowBanned, false);
    },
  );

  storeTest(make, "rooms: block and unblock any room ID", async (s) => {
    assert.equal(await s.rooms.getRoomBlock("!x:hs"), null);
    await s.rooms.setRoomBlocked("!x:hs", "@admin:hs");
    await s.rooms.setRoomBlocked("!x:hs", "@other:hs");
    assert.equal(await s.rooms.getRoomBlock("!x:hs"), "@other:hs");
    await s.rooms.setRoomBlocked("!x:hs", null);
    assert.equal(await s.rooms.getRoomBlock("!x:hs"), null);
  });

  storeTest(make, "rooms: partial-state mark set, replaced, listed and cleared", async (s) => {
    assert.equal(await s.rooms.getPartialState("!p:hs"), null);
    await s.rooms.setPartialState("!p:hs", { joinEventId: "$j1", servers: ["a.example", "b.example"] });
    await s.rooms.setPartialState("!p:hs", { joinEventId: "$j2", servers: ["c.example"] });
    await s.rooms.setPartialState("!o:hs", { joinEventId: "$j3", servers: [] });
    assert.deepEqual(await s.rooms.getPartialState("!p:hs"), {
      roomId: "!p:hs",
      joinEventId: "$j2",
      servers: ["c.example"],
    });
    assert.deepEqual(
      (await s.rooms.listPartialState()).map((r) => r.roomId),
      ["!o:hs", "!p:hs"],
    );
    await s.rooms.clearPartialState("!p:hs");
    assert.equal(await s.rooms.getPartialState("!p:hs"), null);
    assert.deepEqual(
      (await s.rooms.listPartialState()).map((r) => r.roomId),
      ["!o:hs"],
    );
  });

  storeTest(make, "media: list by uploader, age, size and IDs; quarantine; delete", async (s) => {
    const m = (mediaId: string, uploader: string, createdTs: number, size: number) =>
      s.media.putMedia({ mediaId, uploader, contentType: "text/plain", filename: null, size, sha256: "ab", createdTs });
    await m("m1", "@a:hs", 10, 5);
    await m("m2", "@a:hs", 20, 50);
    await m("m3", "@b:hs", 30, 500);
    const ids = async (q: Parameters<typeof s.media.listMedia>[0]) => {
      const r = await s.media.listMedia(q);
      return [r.rows.map((x) => x.mediaId).join(","), r.total];
    };
    assert.deepEqual(await ids({}), ["m3,m2,m1", 3]);
    assert.deepEqual(await ids({ uploader: "@a:hs", dir: "f" }), ["m1,m2", 2]);
    assert.deepEqual(await ids({ beforeTs: 30, sizeGt: 5 }), ["m2", 1]);
    assert.deepEqual(await ids({ mediaIds: ["m1", "m3", "nope"], limit: 1, offset: 1 }), ["m1", 2]);
    assert.equal(await s.media.setQuarantined(["m1", "m2", "nope"], "@admin:hs"), 2);
    assert.deepEqual(await ids({ sha256: "ab", quarantined: true, dir: "f" }), ["m1,m2", 2]);
    assert.deepEqual(await ids({ quarantined: false }), ["m3", 1]);
    assert.deepEqual(await ids({ sha256: "cd" }), ["", 0]);
    assert.equal((await s.media.getMedia("m1"))?.quarantinedBy, "@admin:hs");
    assert.equal(await s.media.setQuarantined(["m1"], null), 1);
    assert.equal((await s.media.getMedia("m1"))?.quarantinedBy, null);
    await s.media.putMedia({ ...(await s.media.getMedia("m3"))!, mediaId: "m4", quarantinedBy: "@admin:hs" });
    assert.equal((await s.media.getMedia("m4"))?.quarantinedBy, "@admin:hs", "putMedia keeps a quarantine");
    assert.equal(await s.media.deleteMedia("m1"), true);
    assert.equal(await s.media.deleteMedia("m1"), false);
    assert.equal(await s.media.getMedia("m1"), null);
  });
}
