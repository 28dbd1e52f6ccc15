import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { test } from "node:test";
import { AmiError, isDiskFull, toAmiError } from "./errors.ts";

test("a full disk (ENOSPC, EDQUOT, SQLITE_FULL) becomes M_RESOURCE_LIMIT_EXCEEDED 507; anything else stays opaque", () => {
  const enospc = Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
  for (const e of [enospc, { code: "EDQUOT" }, { code: "ERR_SQLITE_ERROR", errcode: 13 }]) {
    const a = toAmiError(e);
    assert.equal(a.code, "M_RESOURCE_LIMIT_EXCEEDED");
    assert.equal(a.status, 507);
    assert.doesNotMatch(a.message, /ENOSPC|sqlite/i, "no internals in the client message");
  }
  assert.equal(toAmiError(new Error("boom")).code, "M_UNKNOWN");
  assert.equal(toAmiError({ code: "ERR_SQLITE_ERROR", errcode: 19 }).code, "M_UNKNOWN");
  const mine = new AmiError("M_FORBIDDEN", "no");
  assert.equal(toAmiError(mine), mine);
});

test("node:sqlite reports a full database as errcode 13 (what isDiskFull reads)", () => {
  const db = new DatabaseSync(":memory:");
  db.exec("CREATE TABLE t (x BLOB)");
  const pages = Number((db.prepare("PRAGMA page_count").get() as { page_count: number }).page_count);
  db.exec(`PRAGMA max_page_count = ${pages + 1}`);
  let caught: unknown;
  try {
    db.prepare("INSERT INTO t VALUES (?)").run(Buffer.alloc(64 * 1024));
  } catch (e) {
    caught = e;
  }
  assert.ok(isDiskFull(caught), String(caught));
  db.close();
});
