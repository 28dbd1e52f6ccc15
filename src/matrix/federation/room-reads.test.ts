import assert from "node:assert/strict";
import { test } from "node:test";
import { aclAllows } from "./access.ts";

test("aclAllows: spec Server ACL rules (deny wins, allow needed, globs on the host without port, IP literals)", () => {
  assert.equal(aclAllows(undefined, "any.example"), true, "no ACL admits everyone");
  assert.equal(aclAllows({}, "any.example"), false, "an ACL without allow admits no one");
  const acl = { allow: ["*"], deny: ["*.evil.com", "bad?.org"], allow_ip_literals: false };
  assert.equal(aclAllows(acl, "good.org"), true);
  assert.equal(aclAllows(acl, "good.org:8448"), true, "the port is ignored");
  assert.equal(aclAllows(acl, "sub.EVIL.com"), false, "case-insensitive");
  assert.equal(aclAllows(acl, "evil.com"), true, "*.evil.com needs a subdomain");
  assert.equal(aclAllows(acl, "bad1.org"), false);
  assert.equal(aclAllows(acl, "bad12.org"), true, "? is one character");
  assert.equal(aclAllows(acl, "1.2.3.4:8448"), false);
  assert.equal(aclAllows(acl, "[::1]:8448"), false);
  assert.equal(aclAllows({ allow: ["*"] }, "1.2.3.4"), true, "IP literals allowed by default");
  assert.equal(aclAllows({ allow: ["*.example"], deny: "nonsense" }, "a.example"), true, "a non-list deny is ignored");
  assert.equal(aclAllows({ allow: [1, "x.example"] }, "x.example"), true);
});
