/** Conformance: refresh tokens (chains, deletion with their access tokens and devices) and short-lived tokens. */
import assert from "node:assert/strict";
import type { Store } from "../types.ts";
import { type MakeStore, rejectsWith, storeTest, withDevices } from "./helpers.ts";

const withAccounts = (s: Store) =>
  withDevices(s, [
    ["@alice:hs", "D1"],
    ["@alice:hs", "D2"],
    ["@bob:hs", "D1"],
  ]);

const refresh = (tokenHash: string, userId = "@alice:hs", deviceId = "D1") => ({
  tokenHash,
  userId,
  deviceId,
  createdTs: 3,
});

export function authTokenTests(make: MakeStore): void {
  storeTest(make, "refresh tokens: create, get, chain to a successor, unknown device -> M_UNKNOWN", async (s) => {
    await withAccounts(s);
    await s.authTokens.createRefreshToken(refresh("r1"));
    assert.deepEqual(await s.authTokens.getRefreshToken("r1"), { ...refresh("r1"), nextHash: null });
    assert.equal(await s.authTokens.getRefreshToken("nope"), null);
    await rejectsWith(s.authTokens.createRefreshToken(refresh("r9", "@alice:hs", "D9")), "M_UNKNOWN");
    await assert.rejects(s.authTokens.createRefreshToken(refresh("r1", "@alice:hs", "D2")), "a refresh hash is unique");

    await s.authTokens.createRefreshToken(refresh("r2"));
    await s.authTokens.setRefreshTokenNext("r1", "r2");
    assert.equal((await s.authTokens.getRefreshToken("r1"))?.nextHash, "r2");
    assert.deepEqual(await s.authTokens.refreshTokensBefore("r2"), ["r1"]);
    assert.deepEqual(await s.authTokens.refreshTokensBefore("r1"), []);
  });

  storeTest(make, "refresh tokens: deleteRefreshTokens takes their access tokens, nothing else", async (s) => {
    await withAccounts(s);
    await s.authTokens.createRefreshToken(refresh("r1"));
    await s.authTokens.createRefreshToken(refresh("r2"));
    const access = (tokenHash: string, refreshHash: string | null, expiresTs: number | null = 1000) => ({
      tokenHash,
      userId: "@alice:hs",
      deviceId: "D1",
      createdTs: 5,
      expiresTs,
      refreshHash,
    });
    await s.accounts.createToken(access("a1", "r1"));
    await s.accounts.createToken(access("a1b", "r1"));
    await s.accounts.createToken(access("a2", "r2"));
    await s.accounts.createToken(access("plain", null, null));
    assert.deepEqual(await s.accounts.getToken("a1"), access("a1", "r1"));
    assert.deepEqual(await s.accounts.getToken("plain"), access("plain", null, null));

    assert.deepEqual(await s.authTokens.deleteRefreshTokens(["r1", "unknown"]), ["a1", "a1b"]);
    assert.equal(await s.authTokens.getRefreshToken("r1"), null);
    assert.equal(await s.accounts.getToken("a1"), null);
    assert.equal(await s.accounts.getToken("a1b"), null);
    assert.ok(await s.accounts.getToken("a2"));
    assert.ok(await s.accounts.getToken("plain"));
    assert.ok(await s.authTokens.getRefreshToken("r2"));
    assert.deepEqual(await s.authTokens.deleteRefreshTokens([]), []);
  });

  storeTest(make, "refresh tokens: deleteDevice and deleteTokensForUser delete them too", async (s) => {
    await withAccounts(s);
    await s.authTokens.createRefreshToken(refresh("a1"));
    await s.authTokens.createRefreshToken(refresh("a2", "@alice:hs", "D2"));
    await s.authTokens.createRefreshToken(refresh("b1", "@bob:hs", "D1"));
    await s.accounts.deleteDevice("@alice:hs", "D1");
    assert.equal(await s.authTokens.getRefreshToken("a1"), null);
    assert.ok(await s.authTokens.getRefreshToken("a2"));
    await s.authTokens.createRefreshToken(refresh("a2b", "@alice:hs", "D2"));
    await s.accounts.deleteTokensForUser("@alice:hs", "D2");
    assert.ok(await s.authTokens.getRefreshToken("a2"), "the exempt device keeps its refresh tokens");
    await s.accounts.deleteTokensForUser("@alice:hs");
    assert.equal(await s.authTokens.getRefreshToken("a2"), null);
    assert.equal(await s.authTokens.getRefreshToken("a2b"), null);
    assert.ok(await s.authTokens.getRefreshToken("b1"), "another user's are untouched");
  });

  storeTest(make, "short tokens: kind and expiry checked, consume is single use, expired ones purged", async (s) => {
    await withAccounts(s);
    const login = { tokenHash: "l1", kind: "login" as const, userId: "@alice:hs", expiresTs: 100 };
    const openid = { tokenHash: "o1", kind: "openid" as const, userId: "@bob:hs", expiresTs: 200 };
    await s.authTokens.createShortToken(login);
    await s.authTokens.createShortToken(openid);
    await rejectsWith(
      s.authTokens.createShortToken({ tokenHash: "x", kind: "login", userId: "@nobody:hs", expiresTs: 1 }),
      "M_UNKNOWN",
    );
    assert.equal(await s.authTokens.takeShortToken("openid", "l1", 50, false), null, "kind must match");
    assert.equal(await s.authTokens.takeShortToken("login", "l1", 100, false), null, "expired at expiresTs");
    assert.deepEqual(await s.authTokens.takeShortToken("openid", "o1", 50, false), openid);
    assert.deepEqual(await s.authTokens.takeShortToken("openid", "o1", 60, false), openid, "a read keeps it");
    const both = await Promise.all([
      s.authTokens.takeShortToken("login", "l1", 50, true),
      s.authTokens.takeShortToken("login", "l1", 50, true),
    ]);
    assert.deepEqual(
      both.filter((x) => x !== null),
      [login],
      "two concurrent consumers: exactly one gets it",
    );
    assert.equal(await s.authTokens.takeShortToken("login", "l1", 50, true), null);
    assert.equal(await s.authTokens.deleteExpiredShortTokens(199), 0);
    assert.equal(await s.authTokens.deleteExpiredShortTokens(200), 1);
    assert.equal(await s.authTokens.takeShortToken("openid", "o1", 0, false), null);
  });
}
