import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { AmiError } from "../../core/errors.ts";
import { openStore } from "./open.ts";

const invalidConfig = (e: unknown) => e instanceof AmiError && e.code === "AMI_INVALID_CONFIG";

test("openStore: 'sqlite' is <dataDir>/homeserver.db, relative sqlite: paths resolve against dataDir", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ami-open-"));
  try {
    const a = await openStore("sqlite", join(dir, "data"));
    assert.equal(a.backend, "sqlite");
    await a.close();
    assert.ok(existsSync(join(dir, "data", "homeserver.db")));
    const b = await openStore("sqlite:sub/x.db", dir);
    await b.close();
    assert.ok(existsSync(join(dir, "sub", "x.db")));
    const c = await openStore(`sqlite:${join(dir, "abs.db")}`, "/nonexistent");
    await c.close();
    assert.ok(existsSync(join(dir, "abs.db")));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("openStore: sqlite::memory: works and is initialised", async () => {
  const s = await openStore("sqlite::memory:", "/nonexistent");
  assert.equal(await s.getMaxStream(), 0);
  await s.close();
});

test("openStore: anything else is AMI_INVALID_CONFIG", async () => {
  for (const bad of ["", "sqlite:", "mysql://x", "postgres", "SQLITE", "postgres://host/db?schema=Bad-Name"])
    await assert.rejects(openStore(bad, "/tmp"), invalidConfig, bad);
});

test("openStore: an unreachable PostgreSQL is AMI_UNAVAILABLE, without the password", async () => {
  await assert.rejects(openStore("postgres://u:secret@127.0.0.1:1/db", "/tmp"), (e: unknown) => {
    assert.ok(e instanceof AmiError && e.code === "AMI_UNAVAILABLE", String(e));
    assert.ok(!e.message.includes("secret"));
    assert.match(e.message, /127\.0\.0\.1:1/);
    return true;
  });
});
