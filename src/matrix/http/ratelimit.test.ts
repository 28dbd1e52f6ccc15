import assert from "node:assert/strict";
import { test } from "node:test";
import { RateLimiter } from "./ratelimit.ts";

test("a bucket allows its burst, then answers how long to wait; it refills at the rate", () => {
  const rl = new RateLimiter(2, 3);
  const t = 1_000_000;
  assert.deepEqual([rl.take("a", t), rl.take("a", t), rl.take("a", t)], [0, 0, 0]);
  assert.equal(rl.take("a", t), 500);
  assert.equal(rl.take("a", t + 500), 0);
  assert.equal(rl.take("b", t), 0, "keys are independent");
});

test("the number of buckets stays bounded: full buckets go first, then the oldest", () => {
  const rl = new RateLimiter(1, 5, 100);
  const t = 1_000_000;
  // 50 keys that are rate limited right now (bucket emptied) and 50 whose bucket refilled long ago.
  for (let i = 0; i < 50; i++) rl.take(`idle${i}`, t - 60_000);
  for (let i = 0; i < 50; i++) for (let j = 0; j < 5; j++) rl.take(`busy${i}`, t);
  assert.equal(rl.size, 100);
  rl.take("new", t);
  assert.ok(rl.size <= 90, `size ${rl.size}`);
  // The busy keys kept their state: still limited.
  assert.ok(rl.take("busy49", t) > 0);
  // A flood of new keys, none of them full: the cap still holds.
  for (let i = 0; i < 10_000; i++) for (let j = 0; j < 5; j++) rl.take(`flood${i}`, t);
  assert.ok(rl.size <= 100, `size ${rl.size}`);
});
