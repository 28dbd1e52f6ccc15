import assert from "node:assert/strict";
import { test } from "node:test";
import { normalisePath, primaryKey } from "./key.ts";

const rules = { ignoreQuery: ["utm_*", "fbclid"], keepQuery: null };

test("key: host lower-cased, default port dropped, ignored params dropped, order normalised", () => {
  assert.equal(primaryKey("Example.COM:80", "/a?b=2&utm_source=x&a=1&fbclid=z", rules), "example.com/a?a=1&b=2");
  assert.equal(primaryKey("example.com", "/a?a=1&b=2", rules), primaryKey("EXAMPLE.com", "/a?b=2&a=1", rules));
  assert.equal(normalisePath("/x?utm_a=1", rules), "/x");
});

test("key: keepQuery keeps only those; LL-HLS parameters always kept", () => {
  const keep = { ignoreQuery: [], keepQuery: ["v"] };
  assert.equal(normalisePath("/s.m3u8?v=3&x=1&_HLS_msn=10&_HLS_part=2", keep), "/s.m3u8?_HLS_msn=10&_HLS_part=2&v=3");
  assert.notEqual(normalisePath("/s.m3u8?_HLS_msn=10", rules), normalisePath("/s.m3u8?_HLS_msn=11", rules));
});
