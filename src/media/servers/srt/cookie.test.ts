import assert from "node:assert/strict";
import { test } from "node:test";
import { SynCookies } from "./cookie.ts";

test("a cookie is valid for its address and port, this minute and the next, and for nothing else", () => {
  let now = 10 * 60_000 + 59_000;
  const c = new SynCookies(() => now);
  const cookie = c.make("127.0.0.1", 4000);
  assert.ok(c.valid("127.0.0.1", 4000, cookie));
  assert.ok(!c.valid("127.0.0.1", 4001, cookie), "another port");
  assert.ok(!c.valid("127.0.0.2", 4000, cookie), "another address");
  assert.ok(!new SynCookies(() => now).valid("127.0.0.1", 4000, cookie), "another secret (a restarted server)");
  now += 2000;
  assert.ok(c.valid("127.0.0.1", 4000, cookie), "across the minute's turn");
  now += 60_000;
  assert.ok(!c.valid("127.0.0.1", 4000, cookie), "two minutes on");
});
