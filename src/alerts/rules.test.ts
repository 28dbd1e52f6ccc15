/** The built-in rules over a real HTTP service's /metrics and /_ami/stats, with a fake clock. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { ServiceStatus, SupervisorStatus } from "../control/state.ts";
import { alertsSchema } from "./config.ts";
import { AlertManager, type Notification } from "./manager.ts";
import { AlertRules } from "./rules.ts";

let requests = { ok: 0, err: 0 };
let streams: { path: string; live: boolean }[] = [];
const srv = createServer((req, res) => {
  if (req.url === "/metrics") {
    res.end(
      `# HELP ami_svc_requests_total x\n# TYPE ami_svc_requests_total counter\n` +
        `ami_svc_requests_total{status="200"} ${requests.ok}\nami_svc_requests_total{status="503"} ${requests.err}\n`,
    );
  } else res.end(JSON.stringify({ per_stream: streams }));
});
await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
const home = mkdtempSync(join(tmpdir(), "ami-rules-"));
after(() => {
  srv.close();
  rmSync(home, { recursive: true });
});

function setup(overrides: Record<string, unknown> = {}) {
  let now = 1_000_000;
  const sent: Notification[] = [];
  const cfg = alertsSchema.parse({ downAfterMs: 1000, renotifyMs: 0, ...overrides });
  const m = new AlertManager(
    () => cfg,
    (n) => sent.push(n),
    () => now,
  );
  const rules = new AlertRules(m, home, () => now);
  const svc = (p: Partial<ServiceStatus>): ServiceStatus => ({
    name: "svc",
    kind: "service",
    state: "running",
    pid: 1,
    uptimeS: 1,
    restarts: 0,
    url,
    enabled: true,
    lastExit: null,
    failure: null,
    statsUrl: `${url}/_ami/stats`,
    ...p,
  });
  const run = (p: Partial<ServiceStatus>, advance = 0) => {
    now += advance;
    const st: SupervisorStatus = {
      supervisor: { running: true, pid: 1, url: null, uptimeS: 1 },
      services: [svc(p)],
    };
    return rules.evaluate(st, cfg);
  };
  const events = () => sent.map((n) => `${n.event} ${n.alert.key}`);
  return { run, events, m };
}

test("service_down after downAfterMs, resolved when running again", async () => {
  const { run, events } = setup();
  await run({ state: "backoff", lastExit: "signal SIGKILL" });
  assert.deepEqual(events(), []);
  await run({ state: "backoff" }, 1000);
  assert.deepEqual(events(), ["firing service_down:svc"]);
  await run({ state: "backoff" }, 1000);
  await run({ state: "running" }, 100);
  assert.deepEqual(events(), ["firing service_down:svc", "resolved service_down:svc"]);
});

test("restart_loop counts restarts within the window", async () => {
  const { run, events } = setup({ restartLoop: { restarts: 3, windowMs: 10_000 } });
  await run({ restarts: 0 });
  await run({ restarts: 2 }, 1000);
  assert.deepEqual(events(), []);
  await run({ restarts: 3 }, 1000);
  assert.deepEqual(events(), ["firing restart_loop:svc"]);
  await run({ restarts: 3 }, 20_000);
  assert.deepEqual(events(), ["firing restart_loop:svc", "resolved restart_loop:svc"]);
});

test("error_rate from the 5xx share of the service's requests_total", async () => {
  const { run, events } = setup({ errorRate: { ratio: 0.1, minRequests: 10 } });
  requests = { ok: 100, err: 0 };
  await run({});
  requests = { ok: 110, err: 5 };
  await run({}, 1000);
  assert.deepEqual(events(), ["firing error_rate:svc"]);
  requests = { ok: 130, err: 5 };
  await run({}, 1000);
  assert.deepEqual(events(), ["firing error_rate:svc", "resolved error_rate:svc"]);
});

test("stream_dropped when a live path stops, resolved when it is live again", async () => {
  const { run, events } = setup();
  streams = [{ path: "live/cam", live: true }];
  await run({});
  streams = [{ path: "live/cam", live: false }];
  await run({}, 1000);
  assert.deepEqual(events(), ["firing stream_dropped:svc:live/cam"]);
  streams = [{ path: "live/cam", live: true }];
  await run({}, 1000);
  assert.deepEqual(events(), ["firing stream_dropped:svc:live/cam", "resolved stream_dropped:svc:live/cam"]);
  streams = [];
});

test("disk_full below diskMinFreePercent of the home's filesystem", async () => {
  const { run, events } = setup({ diskMinFreePercent: 100 });
  await run({});
  assert.deepEqual(events(), ["firing disk_full"]);
  const ok = setup({ diskMinFreePercent: 0 });
  await ok.run({});
  assert.deepEqual(ok.events(), []);
});
