import assert from "node:assert/strict";
import { test } from "node:test";
import { AmiError } from "../../core/errors.ts";
import { canonicalJson, canonicalJsonBytes, compareCodePoints, isCanonicalJsonValue } from "./canonical-json.ts";

// Spec appendix "Canonical JSON" examples, given as JSON text so escapes and -0/1e10 parse as the spec means.
const SPEC_EXAMPLES: Array<[string, string]> = [
  ["{}", "{}"],
  ['{\n    "one": 1,\n    "two": "Two"\n}', '{"one":1,"two":"Two"}'],
  ['{\n    "b": "2",\n    "a": "1"\n}', '{"a":"1","b":"2"}'],
  ['{"b":"2","a":"1"}', '{"a":"1","b":"2"}'],
  [
    '{"auth":{"success":true,"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"medium":"email","address":"john.doe@example.org"},{"medium":"msisdn","address":"123456789"}]}}}',
    '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}',
  ],
  ['{"a": "日本語"}', '{"a":"日本語"}'],
  ['{"本": 2, "日": 1}', '{"日":1,"本":2}'],
  ['{"a": "\\u65E5"}', '{"a":"日"}'],
  ['{"a": null}', '{"a":null}'],
  ['{"a": -0, "b": 1e10}', '{"a":0,"b":10000000000}'],
];

test("spec appendix canonical JSON examples", () => {
  for (const [input, expected] of SPEC_EXAMPLES) assert.equal(canonicalJson(JSON.parse(input)), expected, input);
});

test("escapes only what the canonical grammar escapes", () => {
  assert.equal(canonicalJson('"\\\b\f\n\r\t'), '"\\"\\\\\\b\\f\\n\\r\\t"');
  assert.equal(canonicalJson("\u0001\u001f"), '"\\u0001\\u001f"');
  // DEL, U+2028 and non-ASCII stay raw UTF-8.
  assert.equal(canonicalJson("\u007f\u2028é"), '"\u007f\u2028é"');
  assert.deepEqual(
    canonicalJsonBytes({ a: "é" }),
    Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0xa9, 0x22, 0x7d]),
  );
});

test("keys sort by code point, not UTF-16 unit", () => {
  // U+1F600 (surrogate pair D83D DE00) must sort after U+FF21 even though 0xD83D < 0xFF21.
  const obj = { "\u{1F600}": 1, "\uFF21": 2, a: 3, B: 4 };
  assert.equal(canonicalJson(obj), '{"B":4,"a":3,"Ａ":2,"😀":1}');
  assert.ok(compareCodePoints("\u{1F600}", "\uFF21") > 0);
  assert.ok(compareCodePoints("ab", "a") > 0);
  assert.equal(compareCodePoints("x", "x"), 0);
});

test("integer range boundaries", () => {
  assert.equal(canonicalJson(2 ** 53 - 1), "9007199254740991");
  assert.equal(canonicalJson(-(2 ** 53) + 1), "-9007199254740991");
  assert.equal(canonicalJson([0, -1, 1]), "[0,-1,1]");
});

test("rejects what canonical JSON cannot encode with M_BAD_JSON", () => {
  const bad: unknown[] = [
    1.5,
    2 ** 53,
    -(2 ** 53),
    Number.NaN,
    Number.POSITIVE_INFINITY,
    { a: 0.1 },
    [undefined],
    undefined,
    () => 1,
    Symbol("x"),
    10n,
    new Date(0),
    new Map(),
    "\ud800",
    { "\udc00": 1 },
  ];
  for (const v of bad) {
    assert.throws(
      () => canonicalJson(v),
      (e: unknown) => e instanceof AmiError && e.code === "M_BAD_JSON",
      String(typeof v),
    );
    assert.equal(isCanonicalJsonValue(v), false);
  }
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  assert.throws(() => canonicalJson(cyclic), /circular/);
});

test("skips undefined properties but keeps shared (non-cyclic) references", () => {
  const shared = { x: 1 };
  assert.equal(canonicalJson({ a: undefined, b: shared, c: shared }), '{"b":{"x":1},"c":{"x":1}}');
  assert.equal(canonicalJson(Object.assign(Object.create(null), { z: true, y: false })), '{"y":false,"z":true}');
});

test("matches JSON.stringify with sorted keys on random JSON", () => {
  // Independent oracle: for ASCII keys the code-point order equals the default sort (keys start with a
  // letter because JS objects list integer-like keys first whatever the insertion order).
  const rnd = (depth: number): unknown => {
    const r = Math.random();
    if (depth > 3 || r < 0.3) return Math.floor(Math.random() * 2e6) - 1e6;
    if (r < 0.5) return Math.random().toString(36);
    if (r < 0.6) return [rnd(depth + 1), rnd(depth + 1)];
    const o: Record<string, unknown> = {};
    for (let i = 0; i < 4; i++) o[`k${Math.random().toString(36).slice(2, 6)}`] = rnd(depth + 1);
    return o;
  };
  const sortedStringify = (v: unknown): string =>
    JSON.stringify(v, (_k, val) =>
      val && typeof val === "object" && !Array.isArray(val)
        ? Object.fromEntries(
            Object.keys(val)
              .sort()
              .map((k) => [k, val[k]]),
          )
        : val,
    );
  for (let i = 0; i < 200; i++) {
    const v = rnd(0);
    assert.equal(canonicalJson(v), sortedStringify(v));
  }
});
