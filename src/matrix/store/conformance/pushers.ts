/** Conformance: the PusherStore — pushers (unique per app ID and pushkey) and recorded notifications. */
import assert from "node:assert/strict";
import type { NotificationRow, PusherRow } from "../types.ts";
import { type MakeStore, storeTest, user } from "./helpers.ts";

const pusher = (userId: string, over: Partial<PusherRow> = {}): PusherRow => ({
  userId,
  deviceId: "DEV",
  kind: "http",
  appId: "com.example.app",
  pushkey: "key1",
  appDisplayName: "App",
  deviceDisplayName: "Phone",
  profileTag: null,
  lang: "en",
  data: { url: "http://127.0.0.1:1/_matrix/push/v1/notify", format: "event_id_only" },
  pushkeyTs: 1_700_000_000_123,
  ...over,
});

const note = (userId: string, stream: number, highlight = false): NotificationRow => ({
  userId,
  roomId: "!r:hs",
  eventId: `$e${stream}`,
  stream,
  ts: 1_700_000_000_000 + stream,
  actions: ["notify", { set_tweak: "highlight", value: highlight }],
  highlight,
  profileTag: null,
});

export function pusherTests(make: MakeStore): void {
  storeTest(make, "pushers: set, replace, append, delete; gone with the device", async (s) => {
    for (const u of ["@a:hs", "@b:hs"]) {
      await s.accounts.createUser(user(u));
      await s.accounts.upsertDevice({
        userId: u,
        deviceId: "DEV",
        displayName: null,
        createdTs: 1,
        lastSeenTs: null,
        lastSeenIp: null,
      });
    }
    const a = pusher("@a:hs", {
      profileTag: "tag",
      data: { url: "http://x/_matrix/push/v1/notify", nested: { ü: [1] } },
    });
    await s.pushers.setPusher(a, false);
    assert.deepEqual(await s.pushers.getPushers("@a:hs"), [a]);
    // Same (app, key) again: replaced in place.
    await s.pushers.setPusher({ ...a, lang: "de" }, false);
    assert.deepEqual(await s.pushers.getPushers("@a:hs"), [{ ...a, lang: "de" }]);
    // Another user, append: both keep it.
    await s.pushers.setPusher(pusher("@b:hs"), true);
    assert.equal((await s.pushers.getPushersOfUsers(["@a:hs", "@b:hs"])).length, 2);
    // Another user, no append: the first user's pusher with that (app, key) is removed.
    await s.pushers.setPusher(pusher("@b:hs", { lang: "fr" }), false);
    assert.deepEqual(await s.pushers.getPushers("@a:hs"), []);
    assert.deepEqual(
      (await s.pushers.getPushersOfUsers(["@a:hs", "@b:hs"])).map((p) => [p.userId, p.lang]),
      [["@b:hs", "fr"]],
    );
    await s.pushers.setPusher(pusher("@b:hs", { pushkey: "key2" }), true);
    assert.equal(await s.pushers.deletePusher("@b:hs", "com.example.app", "key1"), true);
    assert.equal(await s.pushers.deletePusher("@b:hs", "com.example.app", "key1"), false);
    await s.pushers.setPusher(pusher("@a:hs", { pushkey: "key2" }), true);
    assert.equal(await s.pushers.deletePushersByKey("com.example.app", "key2"), 2);
    assert.deepEqual(await s.pushers.getPushersOfUsers(["@a:hs", "@b:hs"]), []);
    // Deleting the device deletes its pushers; a pusher without a device stays.
    await s.pushers.setPusher(pusher("@a:hs"), true);
    await s.pushers.setPusher(pusher("@a:hs", { pushkey: "k3", deviceId: null }), true);
    await s.accounts.deleteDevice("@a:hs", "DEV");
    assert.deepEqual(
      (await s.pushers.getPushers("@a:hs")).map((p) => p.pushkey),
      ["k3"],
    );
  });

  storeTest(make, "notifications: newest first, before, limit, only highlights, duplicates ignored", async (s) => {
    await s.pushers.addNotifications([note("@a:hs", 5), note("@a:hs", 7, true), note("@b:hs", 7), note("@a:hs", 9)]);
    await s.pushers.addNotifications([note("@a:hs", 9, true)]);
    const all = await s.pushers.getNotifications("@a:hs", { limit: 10, onlyHighlight: false });
    assert.deepEqual(
      all.map((n) => n.stream),
      [9, 7, 5],
    );
    assert.deepEqual(all[0], note("@a:hs", 9));
    assert.deepEqual(
      (await s.pushers.getNotifications("@a:hs", { limit: 1, before: 9, onlyHighlight: false })).map((n) => n.stream),
      [7],
    );
    assert.deepEqual(await s.pushers.getNotifications("@a:hs", { limit: 10, onlyHighlight: true }), [
      note("@a:hs", 7, true),
    ]);
    assert.deepEqual(await s.pushers.getNotifications("@c:hs", { limit: 10, onlyHighlight: false }), []);
    // Retention: what was recorded before a time goes, for every user.
    assert.equal(await s.pushers.deleteNotificationsBefore(1_700_000_000_000 + 7), 1);
    assert.deepEqual(
      (await s.pushers.getNotifications("@a:hs", { limit: 10, onlyHighlight: false })).map((n) => n.stream),
      [9, 7],
    );
  });
}
