/** Conformance: users, devices, access tokens, registration tokens. */
import assert from "node:assert/strict";
import { type MakeStore, rejectsWith, storeTest, user } from "./helpers.ts";

export function accountTests(make: MakeStore): void {
  storeTest(make, "users: create, get, duplicate -> M_USER_IN_USE", async (s) => {
    const u = user("@alice:hs", { admin: true, displayname: "Alice ✨", avatarUrl: "mxc://hs/a", isGuest: false });
    await s.accounts.createUser(u);
    assert.deepEqual(await s.accounts.getUser("@alice:hs"), u);
    assert.equal(await s.accounts.getUser("@nobody:hs"), null);
    await rejectsWith(s.accounts.createUser(user("@alice:hs", { passwordHash: null })), "M_USER_IN_USE");
    assert.equal((await s.accounts.getUser("@alice:hs"))?.passwordHash, "scrypt$abc", "the duplicate changed nothing");
    const guest = user("@guest:hs", { passwordHash: null, isGuest: true });
    await s.accounts.createUser(guest);
    assert.deepEqual(await s.accounts.getUser("@guest:hs"), guest);
    assert.equal(await s.accounts.countUsers(), 2);
  });

  storeTest(make, "users: listUsers orders by id, pages after `from`, hides deactivated by default", async (s) => {
    for (const id of ["@c:hs", "@a:hs", "@e:hs", "@b:hs", "@d:hs"])
      await s.accounts.createUser(user(id, { deactivated: id === "@c:hs" }));
    const list = async (o: Parameters<typeof s.accounts.listUsers>[0]) =>
      (await s.accounts.listUsers(o)).map((u) => u.userId);
    assert.deepEqual(await list({ limit: 10 }), ["@a:hs", "@b:hs", "@d:hs", "@e:hs"]);
    assert.deepEqual(await list({ limit: 10, includeDeactivated: true }), [
      "@a:hs",
      "@b:hs",
      "@c:hs",
      "@d:hs",
      "@e:hs",
    ]);
    assert.deepEqual(await list({ limit: 2, includeDeactivated: true }), ["@a:hs", "@b:hs"]);
    assert.deepEqual(await list({ from: "@b:hs", limit: 2, includeDeactivated: true }), ["@c:hs", "@d:hs"]);
    assert.deepEqual(await list({ from: "@e:hs", limit: 2 }), []);
    assert.equal(await s.accounts.countUsers(), 5, "countUsers counts deactivated users too");
  });

  storeTest(make, "users: updateUser changes only the fields given", async (s) => {
    await s.accounts.createUser(user("@alice:hs", { displayname: "Alice", avatarUrl: "mxc://hs/a" }));
    await s.accounts.updateUser("@alice:hs", { displayname: "Al" });
    let u = await s.accounts.getUser("@alice:hs");
    assert.equal(u?.displayname, "Al");
    assert.equal(u?.avatarUrl, "mxc://hs/a");
    await s.accounts.updateUser("@alice:hs", { avatarUrl: null, admin: true, deactivated: true, passwordHash: null });
    u = await s.accounts.getUser("@alice:hs");
    assert.deepEqual(u, user("@alice:hs", { displayname: "Al", admin: true, deactivated: true, passwordHash: null }));
    await s.accounts.updateUser("@alice:hs", {});
    assert.deepEqual(await s.accounts.getUser("@alice:hs"), u, "an empty patch is a no-op");
    await s.accounts.updateUser("@nobody:hs", { displayname: "x" });
    assert.equal(await s.accounts.getUser("@nobody:hs"), null, "updating an unknown user creates nothing");
  });

  storeTest(make, "devices: upsert, get, list, update; an upsert keeps the device's tokens", async (s) => {
    await s.accounts.createUser(user("@alice:hs"));
    const d1 = {
      userId: "@alice:hs",
      deviceId: "D1",
      displayName: "phone",
      createdTs: 1,
      lastSeenTs: null,
      lastSeenIp: null,
      lastSeenUserAgent: null,
    };
    await s.accounts.upsertDevice(d1);
    await s.accounts.upsertDevice({ ...d1, deviceId: "D0", displayName: null });
    assert.deepEqual(await s.accounts.getDevice("@alice:hs", "D1"), d1);
    assert.equal(await s.accounts.getDevice("@alice:hs", "D9"), null);
    assert.equal(await s.accounts.getDevice("@bob:hs", "D1"), null);
    await s.accounts.createToken({ tokenHash: "h1", userId: "@alice:hs", deviceId: "D1", createdTs: 5 });
    const d1b = { ...d1, displayName: "new phone", lastSeenTs: 10, lastSeenIp: "::1" };
    await s.accounts.upsertDevice(d1b);
    assert.deepEqual(await s.accounts.getDevice("@alice:hs", "D1"), d1b);
    assert.ok(await s.accounts.getToken("h1"), "replacing a device must not drop its access tokens");
    await s.accounts.updateDevice("@alice:hs", "D1", { lastSeenTs: 20 });
    assert.deepEqual(await s.accounts.getDevice("@alice:hs", "D1"), { ...d1b, lastSeenTs: 20 });
    await s.accounts.updateDevice("@alice:hs", "D1", { displayName: null, lastSeenIp: "10.0.0.1" });
    assert.deepEqual(await s.accounts.getDevice("@alice:hs", "D1"), {
      ...d1b,
      lastSeenTs: 20,
      displayName: null,
      lastSeenIp: "10.0.0.1",
    });
    assert.deepEqual(
      (await s.accounts.listDevices("@alice:hs")).map((d) => d.deviceId),
      ["D0", "D1"],
    );
    assert.deepEqual(await s.accounts.listDevices("@bob:hs"), []);
  });

  storeTest(make, "tokens: create, get, delete; deleteDevice removes that device's tokens only", async (s) => {
    await s.accounts.createUser(user("@alice:hs"));
    await s.accounts.createUser(user("@bob:hs"));
    for (const [u, d] of [
      ["@alice:hs", "D1"],
      ["@alice:hs", "D2"],
      ["@bob:hs", "D1"],
    ])
      await s.accounts.upsertDevice({
        userId: u,
        deviceId: d,
        displayName: null,
        createdTs: 1,
        lastSeenTs: null,
        lastSeenIp: null,
      });
    const t = (h: string, u: string, d: string) => ({
      tokenHash: h,
      userId: u,
      deviceId: d,
      createdTs: 7,
      expiresTs: null,
      refreshHash: null,
    });
    await s.accounts.createToken(t("a1", "@alice:hs", "D1"));
    await s.accounts.createToken(t("a1b", "@alice:hs", "D1"));
    await s.accounts.createToken(t("a2", "@alice:hs", "D2"));
    await s.accounts.createToken(t("b1", "@bob:hs", "D1"));
    assert.deepEqual(await s.accounts.getToken("a1"), t("a1", "@alice:hs", "D1"));
    assert.equal(await s.accounts.getToken("nope"), null);
    await assert.rejects(s.accounts.createToken(t("a1", "@alice:hs", "D2")), "a token hash is unique");

    await s.accounts.deleteDevice("@alice:hs", "D1");
    assert.equal(await s.accounts.getDevice("@alice:hs", "D1"), null);
    assert.equal(await s.accounts.getToken("a1"), null);
    assert.equal(await s.accounts.getToken("a1b"), null);
    assert.ok(await s.accounts.getToken("a2"));
    assert.ok(await s.accounts.getToken("b1"), "another user's device with the same ID is untouched");
    assert.ok(await s.accounts.getDevice("@bob:hs", "D1"));

    await s.accounts.deleteToken("a2");
    assert.equal(await s.accounts.getToken("a2"), null);
    await s.accounts.deleteToken("a2"); // deleting twice is fine
    assert.ok(await s.accounts.getDevice("@alice:hs", "D2"), "deleting a token keeps its device");
  });

  storeTest(make, "tokens: deleteTokensForUser, with and without an exempt device", async (s) => {
    await s.accounts.createUser(user("@alice:hs"));
    await s.accounts.createUser(user("@bob:hs"));
    for (const [u, d] of [
      ["@alice:hs", "D1"],
      ["@alice:hs", "D2"],
      ["@alice:hs", "D3"],
      ["@bob:hs", "D1"],
    ]) {
      await s.accounts.upsertDevice({
        userId: u,
        deviceId: d,
        displayName: null,
        createdTs: 1,
        lastSeenTs: null,
        lastSeenIp: null,
      });
      await s.accounts.createToken({ tokenHash: `${u}/${d}`, userId: u, deviceId: d, createdTs: 1 });
    }
    await s.accounts.deleteTokensForUser("@alice:hs", "D2");
    assert.equal(await s.accounts.getToken("@alice:hs/D1"), null);
    assert.ok(await s.accounts.getToken("@alice:hs/D2"));
    assert.equal(await s.accounts.getToken("@alice:hs/D3"), null);
    assert.ok(await s.accounts.getToken("@bob:hs/D1"));
    await s.accounts.deleteTokensForUser("@alice:hs");
    assert.equal(await s.accounts.getToken("@alice:hs/D2"), null);
    assert.ok(await s.accounts.getToken("@bob:hs/D1"));
    assert.equal((await s.accounts.listDevices("@alice:hs")).length, 3, "devices stay");
  });

  storeTest(make, "registration tokens: create, get, list, delete, duplicate rejected", async (s) => {
    const t1 = { token: "abc", usesAllowed: 3, pending: 0, completed: 0, expiryTs: null };
    const t2 = { token: "Zed_-.~", usesAllowed: null, pending: 1, completed: 2, expiryTs: 9_999 };
    await s.accounts.createRegistrationToken(t1);
    await s.accounts.createRegistrationToken(t2);
    assert.deepEqual(await s.accounts.getRegistrationToken("abc"), t1);
    assert.deepEqual(await s.accounts.getRegistrationToken("Zed_-.~"), t2);
    assert.equal(await s.accounts.getRegistrationToken("ABC"), null, "tokens are case-sensitive");
    await rejectsWith(s.accounts.createRegistrationToken(t1), "M_INVALID_PARAM");
    assert.deepEqual((await s.accounts.listRegistrationTokens()).map((t) => t.token).sort(), ["Zed_-.~", "abc"]);
    assert.equal(await s.accounts.updateRegistrationToken("abc", { expiryTs: 5_000 }), true);
    assert.deepEqual(await s.accounts.getRegistrationToken("abc"), { ...t1, expiryTs: 5_000 });
    assert.equal(await s.accounts.updateRegistrationToken("Zed_-.~", { usesAllowed: 7, expiryTs: null }), true);
    assert.deepEqual(
      await s.accounts.getRegistrationToken("Zed_-.~"),
      { ...t2, usesAllowed: 7, expiryTs: null },
      "counts kept",
    );
    assert.equal(await s.accounts.updateRegistrationToken("nope", { usesAllowed: 1 }), false);
    await s.accounts.deleteRegistrationToken("abc");
    assert.equal(await s.accounts.getRegistrationToken("abc"), null);
    assert.equal((await s.accounts.listRegistrationTokens()).length, 1);
  });

  storeTest(make, "registration tokens: consumed exactly up to usesAllowed; unknown and expired fail", async (s) => {
    await s.accounts.createRegistrationToken({
      token: "two",
      usesAllowed: 2,
      pending: 0,
      completed: 0,
      expiryTs: null,
    });
    await s.accounts.createRegistrationToken({
      token: "inf",
      usesAllowed: null,
      pending: 0,
      completed: 0,
      expiryTs: null,
    });
    await s.accounts.createRegistrationToken({
      token: "exp",
      usesAllowed: null,
      pending: 0,
      completed: 0,
      expiryTs: 1000,
    });
    await s.accounts.createRegistrationToken({
      token: "zero",
      usesAllowed: 0,
      pending: 0,
      completed: 0,
      expiryTs: null,
    });
    await s.accounts.createRegistrationToken({
      token: "pend",
      usesAllowed: 2,
      pending: 1,
      completed: 0,
      expiryTs: null,
    });
    assert.equal(await s.accounts.consumeRegistrationToken("two", 0), true);
    assert.equal(await s.accounts.consumeRegistrationToken("two", 0), true);
    assert.equal(await s.accounts.consumeRegistrationToken("two", 0), false);
    assert.equal((await s.accounts.getRegistrationToken("two"))?.completed, 2);
    for (let i = 0; i < 5; i++) assert.equal(await s.accounts.consumeRegistrationToken("inf", 0), true);
    assert.equal((await s.accounts.getRegistrationToken("inf"))?.completed, 5);
    assert.equal(await s.accounts.consumeRegistrationToken("exp", 999), true);
    assert.equal(await s.accounts.consumeRegistrationToken("exp", 1001), false, "expired");
    assert.equal((await s.accounts.getRegistrationToken("exp"))?.completed, 1);
    assert.equal(await s.accounts.consumeRegistrationToken("zero", 0), false);
    assert.equal(await s.accounts.consumeRegistrationToken("nope", 0), false);
    assert.equal(await s.accounts.consumeRegistrationToken("pend", 0), true, "pending uses count against the limit");
    assert.equal(await s.accounts.consumeRegistrationToken("pend", 0), false);
  });

  storeTest(
    make,
    "registration tokens: concurrent consumers (two connections) never exceed usesAllowed",
    async (s, h) => {
      await s.accounts.createRegistrationToken({
        token: "five",
        usesAllowed: 5,
        pending: 0,
        completed: 0,
        expiryTs: null,
      });
      const other = await h.reopen();
      try {
        const results = await Promise.all(
          Array.from({ length: 40 }, (_, i) => (i % 2 ? other : s).accounts.consumeRegistrationToken("five", 0)),
        );
        assert.equal(results.filter(Boolean).length, 5);
        assert.equal((await s.accounts.getRegistrationToken("five"))?.completed, 5);
      } finally {
        await other.close();
      }
    },
  );

  storeTest(make, "getUsers: the users that exist, by user ID", async (s) => {
    await s.accounts.createUser(user("@bob:hs", { displayname: "Bob" }));
    await s.accounts.createUser(user("@alice:hs"));
    const got = await s.accounts.getUsers(["@bob:hs", "@nobody:hs", "@alice:hs", "@bob:hs"]);
    assert.deepEqual(got, [await s.accounts.getUser("@alice:hs"), await s.accounts.getUser("@bob:hs")]);
    assert.deepEqual(await s.accounts.getUsers([]), []);
  });

  storeTest(make, "users: locked and suspended default to false and change by updateUser alone", async (s) => {
    await s.accounts.createUser({ ...user("@alice:hs"), locked: undefined, suspended: undefined });
    assert.deepEqual(await s.accounts.getUser("@alice:hs"), user("@alice:hs"), "absent flags are stored false");
    await s.accounts.updateUser("@alice:hs", { locked: true });
    assert.deepEqual(await s.accounts.getUser("@alice:hs"), user("@alice:hs", { locked: true }));
    await s.accounts.updateUser("@alice:hs", { suspended: true, locked: false });
    assert.deepEqual(await s.accounts.getUser("@alice:hs"), user("@alice:hs", { suspended: true }));
    await s.accounts.createUser(user("@bob:hs", { locked: true, suspended: true }));
    assert.deepEqual(await s.accounts.getUser("@bob:hs"), user("@bob:hs", { locked: true, suspended: true }));
  });

  storeTest(make, "devices: the last seen user agent is kept by upsert and updateDevice", async (s) => {
    await s.accounts.createUser(user("@alice:hs"));
    const d = {
      userId: "@alice:hs",
      deviceId: "D1",
      displayName: null,
      createdTs: 1,
      lastSeenTs: 2,
      lastSeenIp: "::1",
    };
    await s.accounts.upsertDevice(d);
    assert.equal((await s.accounts.getDevice("@alice:hs", "D1"))?.lastSeenUserAgent, null, "absent = null");
    await s.accounts.updateDevice("@alice:hs", "D1", { lastSeenTs: 3, lastSeenUserAgent: "curl/8 ✨" });
    assert.deepEqual(await s.accounts.getDevice("@alice:hs", "D1"), {
      ...d,
      lastSeenTs: 3,
      lastSeenUserAgent: "curl/8 ✨",
    });
    await s.accounts.upsertDevice({ ...d, lastSeenUserAgent: "Other/1" });
    assert.equal((await s.accounts.getDevice("@alice:hs", "D1"))?.lastSeenUserAgent, "Other/1");
  });

  storeTest(make, "profile fields: any JSON value by key, null kept, undefined deletes, per user", async (s) => {
    await s.accounts.createUser(user("@alice:hs"));
    await s.accounts.createUser(user("@bob:hs"));
    assert.deepEqual(await s.accounts.getProfileFields("@alice:hs"), {});
    await s.accounts.setProfileField("@alice:hs", "m.tz", "Europe/Paris");
    await s.accounts.setProfileField("@alice:hs", "org.example.job", { title: "Ünïcode \u0000", n: [1, 2.5, true] });
    await s.accounts.setProfileField("@alice:hs", "com.x.nothing", null);
    await s.accounts.setProfileField("@bob:hs", "m.tz", "UTC");
    assert.deepEqual(await s.accounts.getProfileFields("@alice:hs"), {
      "com.x.nothing": null,
      "m.tz": "Europe/Paris",
      "org.example.job": { title: "Ünïcode \u0000", n: [1, 2.5, true] },
    });
    assert.deepEqual(Object.keys(await s.accounts.getProfileFields("@alice:hs")), [
      "com.x.nothing",
      "m.tz",
      "org.example.job",
    ]);
    await s.accounts.setProfileField("@alice:hs", "m.tz", "Asia/Tokyo");
    await s.accounts.setProfileField("@alice:hs", "com.x.nothing", undefined);
    await s.accounts.setProfileField("@alice:hs", "never.set", undefined);
    assert.deepEqual(await s.accounts.getProfileFields("@alice:hs"), {
      "m.tz": "Asia/Tokyo",
      "org.example.job": { title: "Ünïcode \u0000", n: [1, 2.5, true] },
    });
    assert.deepEqual(await s.accounts.getProfileFields("@bob:hs"), { "m.tz": "UTC" });
  });
}
