import assert from "node:assert/strict";
import { test } from "node:test";
import { defaultConfig } from "../config.ts";
import { Backoff, type BackoffConfig } from "./backoff.ts";

test("defaults: capped at 5 s, reset at the first good health check", () => {
  const b = new Backoff(() => defaultConfig().control.backoff);
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()], [500, 1000, 2000, 4000, 5000, 5000]);
  b.healthy(1000);
  assert.equal(b.attempt, 0);
  assert.equal(b.next(), 500, "a crash after the service was healthy again restarts it quickly");
});

test("the issue's case: a crash every ~20 s never waits more than initialMs", () => {
  const b = new Backoff(() => defaultConfig().control.backoff);
  for (let i = 0; i < 4; i++) {
    assert.equal(b.next(), 500);
    b.healthy(i * 20_000 + 1000);
  }
});

test("resetAfterMs > 0: only a healthy stretch that long resets; a failed check restarts the stretch", () => {
  const c: BackoffConfig = { initialMs: 100, maxMs: 1000, resetAfterMs: 5000 };
  const b = new Backoff(() => c);
  b.next();
  b.next();
  b.healthy(0);
  b.healthy(4000);
  assert.equal(b.attempt, 2);
  b.unhealthy();
  b.healthy(6000);
  assert.equal(b.attempt, 2);
  b.healthy(11_000);
  assert.equal(b.attempt, 0);
  c.maxMs = 150; // read on every use
  assert.deepEqual([b.next(), b.next()], [100, 150]);
});
