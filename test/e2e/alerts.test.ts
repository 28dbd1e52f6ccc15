/**
 * Metrics and alerts with real processes: the supervisor runs the homeserver, media and web services; each
 * service's live /metrics (and the supervisor's) parses strictly and follows the convention, and the Grafana
 * dashboard and Prometheus rules reference only metrics they expose. Killing the web service repeatedly raises a
 * restart_loop alert that a matrix-js-sdk client sees in the alerts room and a local webhook receiver gets;
 * `alerts ack` stops its repeat notifications.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { ClientEvent, type MatrixClient, type MatrixEvent, RoomEvent } from "matrix-js-sdk";
import YAML from "yaml";
import { raise, resolve } from "../../src/alerts/raise.ts";
import { configSchema } from "../../src/config.ts";
import { makeContext } from "../../src/control/context.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { binEntry, cli, freePort, json, repoRoot, tempHome, until } from "../../src/test/cli.ts";
import { conventionProblems, exposedNames } from "../../src/test/metrics-convention.ts";
import { registerUser, sdkClient, startSynced, waitFor } from "./helpers/client.ts";

interface Hook {
  event: string;
  alert: { id: string; kind: string; key: string; summary: string };
  text: string;
}
const hooks: Hook[] = [];
const receiver = createServer((req, res) => {
  let body = "";
  req.on("data", (d) => (body += d));
  req.on("end", () => {
    hooks.push(JSON.parse(body));
    res.end("ok");
  });
});
await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
const hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;

const port = await freePort();
const webPort = await freePort();
const mediaPort = await freePort();
const serverName = "alerts.test";
const h = tempHome({
  control: { port: 0, backoff: { initialMs: 100, maxMs: 300 } },
  matrix: { port, serverName, registration: { enabled: true } },
  web: { port: webPort },
  media: { httpPort: mediaPort, rtmpPort: 0, srtPort: 0, rtsp: { port: 0 }, webrtc: { enabled: false } },
  alerts: {
    intervalMs: 200,
    renotifyMs: 400,
    restartLoop: { restarts: 2, windowMs: 120000 },
    matrix: { invite: [`@alice:${serverName}`] },
    webhook: { url: hookUrl, timeoutMs: 2000, retries: 2 },
  },
});
const base = `http://127.0.0.1:${port}`;
let alice: MatrixClient | undefined;

before(async () => {
  const up = await cli(["up"], { env: h.env });
  assert.equal(up.code, 0, up.stderr + up.stdout);
});

after(async () => {
  alice?.stopClient();
  await h.cleanup();
  receiver.close();
});

const status = async () => json(await cli(["status", "--json"], { env: h.env }));

test("every service's live /metrics follows the convention; the dashboard and rules use only exposed metrics", async () => {
  const info = JSON.parse(readFileSync(join(h.home, "run", "control.json"), "utf8"));
  const token = readFileSync(join(h.home, "run", "control.token"), "utf8").trim();
  const scrape = async (url: string, auth?: string) => {
    const r = await fetch(url, auth ? { headers: { authorization: `Bearer ${auth}` } } : {});
    assert.equal(r.status, 200, url);
    assert.match(r.headers.get("content-type") ?? "", /^text\/plain/);
    return r.text();
  };
  // A request of each status class first, so labelled families have samples.
  await fetch(`${base}/_matrix/client/versions`);
  await fetch(`http://127.0.0.1:${webPort}/`);
  const names = new Set<string>();
  for (const [service, url, auth] of [
    ["matrix", `${base}/metrics`],
    ["media", `http://127.0.0.1:${mediaPort}/metrics`],
    ["web", `http://127.0.0.1:${webPort}/metrics`],
    ["supervisor", `${info.url}/metrics`, token],
  ] as const) {
    const text = await scrape(url, auth);
    assert.deepEqual(conventionProblems(text, service), [], `${service}:\n${text}`);
    for (const n of exposedNames(text)) names.add(n);
  }
  const referenced = (expr: string) =>
    (expr.replace(/\{[^}]*\}/g, "").match(/\b(ami|process|nodejs)_[a-z0-9_]+/g) ?? []).filter(Boolean);
  const dash = JSON.parse(readFileSync(join(repoRoot, "deploy/grafana/ami-streams.json"), "utf8"));
  const exprs: string[] = dash.panels.flatMap((p: { targets: { expr: string }[] }) => p.targets.map((t) => t.expr));
  const rules = YAML.parse(readFileSync(join(repoRoot, "deploy/prometheus/alerts.yml"), "utf8"));
  for (const g of rules.groups) for (const r of g.rules) exprs.push(r.expr);
  assert.ok(exprs.length > 20);
  const missing = [...new Set(exprs.flatMap(referenced))].filter((n) => !names.has(n));
  assert.deepEqual(missing, [], "referenced but not exposed");
});

test("killing a service repeatedly raises restart_loop: seen in the Matrix alerts room and by the webhook", async () => {
  const session = await registerUser(base, "alice");
  alice = sdkClient(base, session);
  const notices: MatrixEvent[] = [];
  alice.on(RoomEvent.Timeline, (e: MatrixEvent) => {
    if (e.getType() === "m.room.message" && e.getContent().msgtype === "m.notice") notices.push(e);
  });
  const c = alice;
  alice.on(ClientEvent.Room, (room) => {
    if (room.getMyMembership() === "invite") void c.joinRoom(room.roomId);
  });
  await startSynced(alice);

  for (let i = 0; i < 2; i++) {
    const before = (await status()).services.find((s: { name: string }) => s.name === "web");
    process.kill(before.pid, "SIGKILL");
    await until("web restarted", async () => {
      const s = (await status()).services.find((x: { name: string }) => x.name === "web");
      return s.state === "running" && s.pid !== before.pid;
    });
  }
  const hook = await waitFor("webhook restart_loop", () =>
    hooks.find((x) => x.event === "firing" && x.alert.key === "restart_loop:web"),
  );
  assert.match(hook.text, /web restarted 2 times/);
  const notice = await waitFor(
    "restart_loop notice in the alerts room",
    () => notices.find((e) => e.getContent()["org.ami-streams.alert"]?.key === "restart_loop:web"),
    30_000,
  );
  assert.match(notice.getContent().body, /FIRING.*restart_loop: web restarted/);
  const room = alice.getRoom(notice.getRoomId() as string);
  assert.equal(room?.getCanonicalAlias(), `#ami-alerts:${serverName}`);

  const list = json(await cli(["alerts", "list", "--json"], { env: h.env }));
  const a = list.alerts.find((x: { key: string }) => x.key === "restart_loop:web");
  assert.equal(a.state, "firing");
  assert.equal(list.counts.firing >= 1, true);
  const monitor = json(await cli(["monitor", "--once", "--json"], { env: h.env }));
  assert.equal(monitor.alerts.firing >= 1, true);
});

test("alerts ack stops re-notification", async () => {
  const id = hooks.find((x) => x.alert.key === "restart_loop:web")?.alert.id as string;
  const repeats = () => hooks.filter((x) => x.alert.id === id && x.event === "repeat").length;
  await waitFor("a repeat notification before ack", () => repeats() > 0);
  const ack = await cli(["alerts", "ack", id], { env: h.env });
  assert.equal(ack.code, 0, ack.stderr);
  assert.match(ack.stdout, new RegExp(`acknowledged ${id}`));
  await new Promise((r) => setTimeout(r, 500)); // a notification already on its way may still land
  const n = repeats();
  await new Promise((r) => setTimeout(r, 1500)); // several renotify periods
  assert.equal(repeats(), n, "no repeats after ack");
  const listed = json(await cli(["alerts", "list", "--json"], { env: h.env }));
  assert.equal(listed.alerts.find((x: { id: string }) => x.id === id).acked, true);
  // The same ops are MCP tools.
  const mcp = new Client({ name: "alerts-test", version: "1" });
  await mcp.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [binEntry, "mcp"],
      env: h.env as Record<string, string>,
      stderr: "pipe",
    }),
  );
  try {
    const tools = (await mcp.listTools()).tools.map((t) => t.name);
    assert.ok(tools.includes("alerts_list") && tools.includes("alerts_ack"), tools.join(","));
    const r = await mcp.callTool({ name: "alerts_list", arguments: {} });
    assert.ok(!r.isError, JSON.stringify(r.content));
    const viaMcp = (r.structuredContent as { alerts: { id: string; acked: boolean }[] }).alerts;
    assert.equal(viaMcp.find((x) => x.id === id)?.acked, true);
  } finally {
    await mcp.close();
  }
  const bad = await cli(["alerts", "ack", "nope"], { env: h.env });
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /no firing alert 'nope'/);
});

test("raise() from another process (a failed backup) reaches the webhook; resolve() ends it", async () => {
  const config = configSchema.parse({ ...YAML.parse(readFileSync(h.configFile, "utf8")), home: h.home });
  // The supervisor of h.home, whatever AMI_STREAMS_HOME the test runner set.
  const ctx = makeContext({ config, configPath: h.configFile, log: silentLogger, home: h.home });
  const key = "backup_failed";
  assert.equal(
    await raise(ctx, { kind: "backup_failed", key, severity: "critical", summary: "pg_dump exited 1" }),
    true,
  );
  await waitFor("backup_failed at the webhook", () => hooks.find((x) => x.event === "firing" && x.alert.key === key));
  assert.equal(await resolve(ctx, key), true);
  await waitFor("backup_failed resolved", () => hooks.find((x) => x.event === "resolved" && x.alert.key === key));
  await assert.rejects(raise(ctx, { kind: "Bad Kind", key, summary: "x" }), /bad alert/);
});
