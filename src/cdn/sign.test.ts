import assert from "node:assert/strict";
import { test } from "node:test";
import { needsSignature, signature, signTarget, verifyTarget } from "./sign.ts";

const secret = "0123456789abcdef-secret";
const now = Date.UTC(2026, 0, 1);
const exp = now / 1000 + 60;

test("sign: a signed target verifies and comes back without expires/sig, other parameters kept", () => {
  const t = signTarget(secret, "/v/a.ts", exp);
  assert.deepEqual(verifyTarget(secret, t, now), { ok: true, target: "/v/a.ts" });
  const withQuery = `/v/a.m3u8?_HLS_msn=3&expires=${exp}&sig=${signature(secret, "/v/a.m3u8", exp)}&x=1`;
  assert.deepEqual(verifyTarget(secret, withQuery, now), { ok: true, target: "/v/a.m3u8?_HLS_msn=3&x=1" });
});

test("sign: hostile and wrong signatures are refusals with a reason, never throws", () => {
  const good = signature(secret, "/a", exp);
  const cases: [string, string][] = [
    ["/a", "missing signature"],
    [`/a?expires=${exp}`, "missing signature"],
    [`/a?sig=${good}`, "missing signature"],
    [`/b?expires=${exp}&sig=${good}`, "bad signature"],
    [`/a?expires=${exp + 1}&sig=${good}`, "bad signature"],
    [`/a?expires=${exp}&sig=${good}&sig=${good}`, "repeated 'sig'"],
    [`/a?expires=${exp}&expires=${exp}&sig=${good}`, "repeated 'expires'"],
    [`/a?expires=-1&sig=${good}`, "malformed 'expires'"],
    [`/a?expires=1e12&sig=${good}`, "malformed 'expires'"],
    [`/a?expires=99999999999999999999&sig=${good}`, "malformed 'expires'"],
    [`/a?expires=${exp}&sig=${good.slice(1)}`, "malformed 'sig'"],
    [`/a?expires=${exp}&sig=${good.slice(1)}%`, "malformed 'sig'"],
    [`/a?expires=${exp}&sig=${"é".repeat(43)}`, "malformed 'sig'"],
    [`/a?expires=${exp}&sig=${"x".repeat(100_000)}`, "malformed 'sig'"],
    [`/a?expires=${exp}&sig`, "malformed 'sig'"],
  ];
  for (const [t, reason] of cases) assert.deepEqual(verifyTarget(secret, t, now), { ok: false, reason }, t);
  // Right signature, another secret: refused.
  assert.deepEqual(verifyTarget("another-secret-0123456", signTarget(secret, "/a", exp), now), {
    ok: false,
    reason: "bad signature",
  });
});

test("sign: expired links are refused (the expiry second itself included)", () => {
  const t = signTarget(secret, "/a", exp);
  assert.equal(verifyTarget(secret, t, exp * 1000 - 1).ok, true);
  assert.deepEqual(verifyTarget(secret, t, exp * 1000), { ok: false, reason: "link expired" });
});

test("sign: only paths under signedPaths need a signature, and only with a secret", () => {
  const rules = { signingSecret: secret, signedPaths: ["/private/", "/live/"] };
  assert.equal(needsSignature(rules, "/private/x"), true);
  assert.equal(needsSignature(rules, "/public/x"), false);
  assert.equal(needsSignature({ signingSecret: null, signedPaths: ["/"] }, "/private/x"), false);
  // Forms an origin may map onto a signed path: encoded slashes and dots, backslashes, another case.
  for (const p of [
    "/public%2F..%2Fprivate/x",
    "/public/%2e%2e/private/x",
    "/PRIVATE/x",
    "/public\\..\\private/x",
    "/%70rivate/x",
  ])
    assert.equal(needsSignature(rules, p), true, p);
  assert.equal(needsSignature(rules, "/public/%zz"), false);
});
