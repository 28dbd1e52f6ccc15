import assert from "node:assert/strict";
import { test } from "node:test";
import { AmiError } from "../../core/errors.ts";
import { generateSigningKey } from "../events/signing.ts";
import { ServerAccess } from "./access.ts";
import { parseXMatrix, signRequest, verifyRequestSignature } from "./x-matrix.ts";

const SIG = "a".repeat(86);

test("X-Matrix header: parsed per RFC 9110 auth-params, names case-insensitive, quoted or token values", () => {
  assert.deepEqual(parseXMatrix(`X-Matrix origin="hs1.test",destination="hs2.test",key="ed25519:a_b",sig="${SIG}"`), {
    origin: "hs1.test",
    destination: "hs2.test",
    key: "ed25519:a_b",
    sig: SIG,
  });
  // Unquoted values (colons allowed for older servers), spaces and tabs around commas, any order, unknown ignored.
  assert.deepEqual(parseXMatrix(`x-matrix  Key=ed25519:k , ORIGIN=hs1.test:8448,\tsig="${SIG}", extra="x, y"`), {
    origin: "hs1.test:8448",
    destination: undefined,
    key: "ed25519:k",
    sig: SIG,
  });
  // Backslash escapes inside quotes are unescaped.
  assert.equal(parseXMatrix(`X-Matrix origin="hs\\1.test",key="ed25519:k",sig="${SIG}"`).origin, "hs1.test");
});

test("X-Matrix header: anything malformed is 401 M_UNAUTHORIZED naming the problem", () => {
  const cases: [string | undefined, RegExp][] = [
    [undefined, /Missing/],
    ["", /Missing/],
    [`Bearer abc`, /scheme/],
    [`X-Matrix`, /scheme/],
    [`X-Matrix origin`, /name=value/],
    [`X-Matrix origin="hs1.test,key="ed25519:k",sig="x"`, /unterminated|expected ','/],
    [`X-Matrix origin="hs1.test" key="ed25519:k",sig="x"`, /expected ','/],
    [`X-Matrix origin="hs1.test",origin="hs3.test",key="ed25519:k",sig="x"`, /twice/],
    [`X-Matrix key="ed25519:k",sig="x"`, /no origin/],
    [`X-Matrix origin="hs1.test",sig="x"`, /no key/],
    [`X-Matrix origin="hs1.test",key="ed25519:k"`, /no sig/],
    [`X-Matrix origin="hs1.test",key="rsa:k",sig="x"`, /ed25519/],
    [`X-Matrix origin="not a server/",key="ed25519:k",sig="x"`, /server name/],
    [`X-Matrix origin=hs1.test;x,key="ed25519:k",sig="x"`, /bad value/],
  ];
  for (const [h, re] of cases) {
    assert.throws(
      () => parseXMatrix(h),
      (e: unknown) => e instanceof AmiError && e.code === "M_UNAUTHORIZED" && e.status === 401 && re.test(e.message),
      `header ${JSON.stringify(h)}`,
    );
  }
});

test("X-Matrix signature covers method, uri, origin, destination and content", () => {
  const key = generateSigningKey();
  const r = {
    method: "PUT",
    uri: "/_matrix/federation/v1/send/1",
    origin: "hs1.test",
    destination: "hs2.test",
    content: { a: 1 },
  };
  const auth = parseXMatrix(signRequest(r, key));
  assert.ok(verifyRequestSignature(r, auth, key.publicKeyBase64));
  for (const changed of [
    { method: "POST" },
    { uri: "/_matrix/federation/v1/send/2" },
    { origin: "hs3.test" },
    { destination: "hs3.test" },
    { content: { a: 2 } },
    { content: undefined },
  ])
    assert.ok(!verifyRequestSignature({ ...r, ...changed }, auth, key.publicKeyBase64), JSON.stringify(changed));
  assert.ok(!verifyRequestSignature(r, auth, generateSigningKey().publicKeyBase64));
  // A GET signs no content at all.
  const get = { method: "GET", uri: "/x", origin: "hs1.test", destination: "hs2.test" };
  assert.ok(verifyRequestSignature(get, parseXMatrix(signRequest(get, key)), key.publicKeyBase64));
});

test("allow/deny lists: globs on the host without port, case-insensitive, deny wins", () => {
  const a = new ServerAccess({ allow: ["*.test", "example.org"], deny: ["evil.test", "b?d.test"] });
  assert.ok(a.allowed("hs1.test"));
  assert.ok(a.allowed("HS1.TEST:8448"));
  assert.ok(a.allowed("example.org"));
  assert.ok(!a.allowed("sub.example.org"));
  assert.ok(!a.allowed("evil.test"));
  assert.ok(!a.allowed("bad.test:1"));
  assert.ok(a.allowed("baad.test"));
  assert.ok(!a.allowed("matrix.org"));
  assert.ok(new ServerAccess({ allow: ["*"], deny: [] }).allowed("[::1]:8448"));
  assert.ok(!new ServerAccess({ allow: [], deny: [] }).allowed("hs1.test"));
});
