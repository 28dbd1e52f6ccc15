import assert from "node:assert/strict";
import { test } from "node:test";
import { hashPassword, verifyPassword } from "./passwords.ts";

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
