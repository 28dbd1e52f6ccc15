/**
 * The cluster bus under malformed messages (a worker of another version during a rolling upgrade, a stray publish
 * on the channel): each is skipped or reaches handlers as data they check, a handler that throws is logged, and the
 * next good message still arrives. Real Redis.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, test } from "node:test";
import { Redis } from "ioredis";
import { silentLogger } from "../../core/logger.ts";
import { type BusMessage, RedisBus } from "./bus.ts";

const url = "redis://127.0.0.1:6379";
const raw = new Redis(url, { maxRetriesPerRequest: 1 });
raw.on("error", () => {});
after(() => raw.disconnect());

test("malformed bus messages never crash the receiver; the next good one arrives", async () => {
  const channel = `ami-test:bus:${randomBytes(4).toString("hex")}`;
  const bus = new RedisBus(url, channel, "w1", silentLogger);
  await bus.ready();
  const got: BusMessage[] = [];
  bus.subscribe((m) => {
    // A handler that trusts a field it should have checked.
    if (m.t === "head") (m.roomId as unknown as { length: number }).length.toFixed();
  });
  bus.subscribe((m) => got.push(m));
  try {
    for (const junk of [
      "not json",
      "null",
      "[]",
      '"str"',
      "{}",
      '{"from":"w2","m":"x"}',
      '{"from":"w2","m":null}',
      '{"from":"w2","m":[1,2]}',
      '{"from":"w2","m":{"t":"head"}}', // roomId missing: the first handler throws
      '{"from":"w2","m":{"t":"auth","rev":{"tokens":5},"close":true}}',
      '{"from":"w2","m":{"__proto__":{"t":"auth"}}}',
      `{"from":"w2","m":${"[".repeat(100_000)}}`,
    ])
      await raw.publish(channel, junk);
    await raw.publish(channel, JSON.stringify({ from: "w2", m: { t: "hosts", roomId: "!r:x" } }));
    const end = Date.now() + 3000;
    while (!got.some((m) => m.t === "hosts") && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    assert.ok(
      got.some((m) => m.t === "hosts"),
      "the good message after the junk",
    );
    assert.ok(!got.some((m) => Array.isArray(m) || typeof m !== "object"), "only objects reach handlers");
  } finally {
    await bus.close();
  }
});
