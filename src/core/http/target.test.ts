import assert from "node:assert/strict";
import { test } from "node:test";
import { loggablePath, parseTarget, safeDecode } from "./target.ts";

test("targets that made new URL throw parse, or are refused, without throwing", () => {
  assert.equal(parseTarget("//[")?.pathname, "//[");
  assert.equal(parseTarget("//x:99999")?.pathname, "//x:99999");
  assert.equal(parseTarget("/api/streams/%ff")?.pathname, "/api/streams/%ff");
  assert.equal(parseTarget("/a?b=1&c")?.searchParams.get("b"), "1");
  assert.equal(parseTarget("http://evil:1/x?y=2")?.pathname, "/x");
  assert.equal(parseTarget("*")?.pathname, "*");
  for (const bad of ["", undefined, "x", "a/b", "/a b", "/a\0b", "/\x7f", "mailto:x", `/${"a".repeat(20_000)}`])
    assert.equal(parseTarget(bad), null, String(bad));
});

test("safeDecode answers null for malformed percent-encoding", () => {
  assert.equal(safeDecode("%ff"), null);
  assert.equal(safeDecode("%E2%82"), null);
  assert.equal(safeDecode("a%20b"), "a b");
});

test("loggablePath never carries the query", () => {
  assert.equal(loggablePath("/x?access_token=secret"), "/x?…");
  assert.equal(loggablePath("/x"), "/x");
});
