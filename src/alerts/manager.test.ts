import assert from "node:assert/strict";
import { test } from "node:test";
import { AlertManager, type Notification } from "./manager.ts";

test("dedupes by key, re-notifies until acked, resolves once, fires anew after", () => {
  let now = 1_000_000;
  const sent: Notification[] = [];
  const m = new AlertManager(
    () => ({ renotifyMs: 1000 }),
    (n) => sent.push(n),
    () => now,
  );
  const a = m.raise({ kind: "restart_loop", key: "restart_loop:web", summary: "web restarted 3 times" });
  m.raise({ kind: "restart_loop", key: "restart_loop:web", summary: "web restarted 4 times" });
  assert.deepEqual(
    sent.map((n) => n.event),
    ["firing"],
  );
  assert.equal(m.list()[0].summary, "web restarted 4 times");
  m.tick();
  assert.equal(sent.length, 1);
  now += 1000;
  m.tick();
  assert.deepEqual(
    sent.map((n) => n.event),
    ["firing", "repeat"],
  );
  m.ack(a.id);
  now += 5000;
  m.tick();
  assert.equal(sent.length, 2, "an acked alert is not repeated");
  assert.deepEqual(m.counts(), { firing: 1, acked: 1, total: 1 });
  assert.equal(m.resolve("restart_loop:web"), true);
  assert.equal(m.resolve("restart_loop:web"), false);
  assert.equal(sent.at(-1)?.event, "resolved");
  assert.throws(() => m.ack(a.id), /already resolved/);
  assert.throws(() => m.ack("a99"), /no firing alert/);
  const b = m.raise({ kind: "restart_loop", key: "restart_loop:web", summary: "again" });
  assert.notEqual(b.id, a.id);
  assert.equal(b.acked, false);
  assert.equal(m.list(true).length, 2);
  assert.throws(() => m.raise({ kind: "Bad Kind", key: "k", summary: "s" }));
});
