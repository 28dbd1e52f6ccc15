import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, test } from "node:test";
import { Redis } from "ioredis";
import { silentLogger } from "../../core/logger.ts";
import { freePort } from "../../test/cli.ts";
import { SharedRateLimiter, SharedWindows } from "./ratelimit.ts";

const opts = { maxRetriesPerRequest: 1, enableOfflineQueue: false };
const conns: Redis[] = [];
const connect = async (url: string) => {
  const r = new Redis(url, { ...opts, lazyConnect: true, retryStrategy: () => null });
  r.on("error", () => {});
  conns.push(r);
  await r.connect().catch(() => {});
  return r;
};
after(() => {
  for (const r of conns) r.disconnect();
});

test("two workers (two connections) take from one bucket in the real Redis", async () => {
  const prefix = `ami-test:rl:${randomBytes(4).toString("hex")}`;
  const [r1, r2] = [await connect("redis://127.0.0.1:6379"), await connect("redis://127.0.0.1:6379")];
  const w1 = new SharedRateLimiter(r1, prefix, 1, 5, silentLogger);
  const w2 = new SharedRateLimiter(r2, prefix, 1, 5, silentLogger);
  const waits: number[] = [];
  for (let i = 0; i < 8; i++) waits.push(await (i % 2 ? w1 : w2).take("@u:x"));
  // 5 allowed in all (not 5 each), then a wait of about a second per token.
  assert.equal(waits.filter((w) => w === 0).length, 5, `waits ${waits}`);
  for (const w of waits.slice(5)) assert.ok(w > 0 && w <= 1000, `wait ${w}`);
  // Another key has its own bucket; the bucket expires by itself once it would be full again.
  assert.equal(await w1.take("@other:x"), 0);
  const ttl = await r1.pttl(`${prefix}:@u:x`);
  assert.ok(ttl > 0 && ttl <= 6000, `ttl ${ttl}`);
  assert.equal(w1.fallbacks + w2.fallbacks, 0);
});

test("Redis unreachable: the worker limits with its own bucket (never unlimited, never an error)", async () => {
  const dead = await connect(`redis://127.0.0.1:${await freePort()}`);
  const w = new SharedRateLimiter(dead, "ami-test:rl:dead", 1, 3, silentLogger);
  const waits: number[] = [];
  for (let i = 0; i < 5; i++) waits.push(await w.take("1.2.3.4"));
  assert.deepEqual(
    waits.map((x) => x === 0),
    [true, true, true, false, false],
  );
  assert.equal(w.fallbacks, 5);
});

test("shared windows: two workers count against one limit per window; Redis unreachable answers null", async () => {
  const prefix = `ami-test:win:${randomBytes(4).toString("hex")}`;
  const [r1, r2] = [await connect("redis://127.0.0.1:6379"), await connect("redis://127.0.0.1:6379")];
  const w1 = new SharedWindows(r1, prefix, silentLogger);
  const w2 = new SharedWindows(r2, prefix, silentLogger);
  // A limit of 5 per 60 s: 2 + 2 counted, 2 more refused (nothing counted), 1 more counted.
  assert.equal(await w1.count("@u:x", 2, 5, 60_000), 0);
  assert.equal(await w2.count("@u:x", 2, 5, 60_000), 0);
  const refused = await w1.count("@u:x", 2, 5, 60_000);
  assert.ok(refused !== null && refused > 55_000 && refused <= 60_000, `refused for ${refused} ms`);
  assert.equal(await w2.count("@u:x", 1, 5, 60_000), 0, "a refusal counted nothing");
  assert.ok(((await w2.count("@u:x", 1, 5, 60_000)) ?? 0) > 0, "the window is full");
  assert.equal(await w1.count("@other:x", 5, 5, 60_000), 0, "another key has its own window");
  assert.equal(await w1.count("@big:x", 6, 5, 60_000), 60_000, "more than the limit at once: refused");
  // The window ends by itself.
  assert.equal(await w1.count("@short:x", 1, 1, 200), 0);
  assert.ok(((await w2.count("@short:x", 1, 1, 200)) ?? 0) > 0);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await w2.count("@short:x", 1, 1, 200), 0);
  assert.equal(w1.fallbacks + w2.fallbacks, 0);

  const dead = new SharedWindows(await connect(`redis://127.0.0.1:${await freePort()}`), prefix, silentLogger);
  assert.equal(await dead.count("@u:x", 1, 5, 60_000), null);
  assert.equal(dead.fallbacks, 1);
});
