import assert from "node:assert/strict";
import { test } from "node:test";
import { dummyHash, hashPassword, verifyPassword, verifyPasswordOrDummy } from "./passwords.ts";

test("scrypt hashes verify, are salted, and reject wrong or malformed input", async () => {
  const h = await hashPassword("hunter2 ü");
  assert.match(h, /^scrypt\$16384\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
  assert.notEqual(h, await hashPassword("hunter2 ü"));
  assert.equal(await verifyPassword("hunter2 ü", h), true);
  assert.equal(await verifyPassword("hunter2 u", h), false);
  assert.equal(await verifyPassword("", h), false);
  for (const bad of [
    "",
    "plain",
    "scrypt$1$1$1$AA$AA",
    "bcrypt$x",
    "scrypt$99999999$8$1$AAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
  ]) {
    assert.equal(await verifyPassword("x", bad), false, bad);
  }
});

test("without a usable hash the password is still checked, against the dummy hash, and never matches", async () => {
  const seen: string[] = [];
  const spy = async (p: string, h: string) => {
    seen.push(h);
    return verifyPassword(p, h);
  };
  const real = await hashPassword("pw");
  assert.equal(await verifyPasswordOrDummy("pw", real, spy), true);
  assert.deepEqual(seen, [real]);
  // Unknown user: the same scrypt work runs against the dummy hash, and even "true" from it is not a login.
  assert.equal(await verifyPasswordOrDummy("pw", null, spy), false);
  assert.equal(seen.length, 2);
  assert.equal(seen[1], await dummyHash());
  assert.match(seen[1], /^scrypt\$16384\$8\$1\$/, "same cost parameters as a real hash");
  assert.equal(await verifyPasswordOrDummy("pw", null, async () => true), false);
});
