/** Webhook delivery against real local receivers: retries after failures, a per-attempt timeout. */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, test } from "node:test";
import { configSchema } from "../config.ts";
import { makeContext } from "../control/context.ts";
import { silentLogger } from "../core/logger.ts";
import { alertsSchema } from "./config.ts";
import { Delivery } from "./deliver.ts";
import type { Notification } from "./manager.ts";

let failFirst = 0;
let hang = false;
const got: unknown[] = [];
let attempts = 0;
const srv = createServer((req, res) => {
  let body = "";
  req.on("data", (d) => (body += d));
  req.on("end", () => {
    attempts++;
    if (hang) return; // never answers
    if (failFirst-- > 0) {
      res.statusCode = 500;
      return res.end();
    }
    got.push(JSON.parse(body));
    res.end();
  });
});
await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/`;
after(() => {
  srv.closeAllConnections();
  srv.close();
});

const n: Notification = {
  event: "firing",
  alert: {
    id: "a1",
    kind: "backup_failed",
    key: "backup_failed",
    severity: "critical",
    summary: "pg_dump exited 1",
    state: "firing",
    acked: false,
    firstAt: "",
    lastAt: "",
    resolvedAt: null,
    notifications: 1,
  },
};

function delivery(webhook: object) {
  const config = configSchema.parse({ matrix: { enabled: false } });
  const cfg = alertsSchema.parse({ webhook: { url, ...webhook } });
  return new Delivery(() => cfg, makeContext({ config, configPath: undefined, log: silentLogger }), silentLogger);
}
const until = async (f: () => boolean) => {
  for (let i = 0; i < 200 && !f(); i++) await new Promise((r) => setTimeout(r, 25));
};

test("a webhook answering 500 is retried until it takes the notification", async () => {
  failFirst = 1;
  attempts = 0;
  const d = delivery({ retries: 2, timeoutMs: 2000 });
  d.send(n);
  // The receiver holds the body before the sender has read the answer: wait for the sender's count too.
  await until(() => got.length === 1 && d.counts.get("webhook\0sent") === 1);
  assert.equal(attempts, 2);
  const body = got[0] as { event: string; alert: unknown };
  assert.equal(body.event, "firing");
  assert.deepEqual(body.alert, n.alert);
  assert.match((got[0] as { text: string }).text, /\[FIRING\] critical backup_failed: pg_dump exited 1/);
  assert.equal(d.counts.get("webhook\0retried"), 1);
  assert.equal(d.counts.get("webhook\0sent"), 1);
});

test("a webhook that never answers times out on each attempt and is counted failed", async () => {
  hang = true;
  attempts = 0;
  const d = delivery({ retries: 1, timeoutMs: 200 });
  d.send(n);
  await until(() => d.counts.get("webhook\0failed") === 1);
  assert.equal(attempts, 2);
  assert.equal(d.counts.get("webhook\0failed"), 1);
  hang = false;
});
