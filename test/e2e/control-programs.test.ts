/**
 * External programs under the supervisor, with real processes: python3's http.server (HTTP health check and a
 * stats endpoint) and a python3 TCP listener (TCP check) configured under `programs:`. up -> running -> kill -9
 * -> restarted; start/stop/restart; monitor; logs; down; a program that never gets healthy fails `up`; a restart
 * policy that gives up; config errors naming the key; orphans after the supervisor's kill -9.
 */
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import YAML from "yaml";
import { pidAlive, programProcesses } from "../../src/control/proc.ts";
import { cli, freePort, json, tempHome, until } from "../../src/test/cli.ts";

const base = {
  matrix: { enabled: false },
  media: { enabled: false },
  web: { enabled: false },
  control: { port: 0, healthIntervalMs: 200, stopGraceMs: 3000, backoff: { initialMs: 100 } },
};

const httpPort = await freePort();
const tcpPort = await freePort();
// The TCP program prints a line with a secret: the log capture must scrub it.
const tcpScript = [
  "import socket, time",
  "s = socket.socket()",
  "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)",
  `s.bind(("127.0.0.1", ${tcpPort}))`,
  "s.listen(16)",
  `print("tcp listening on ${tcpPort}; Authorization: Bearer sekrit-value-123", flush=True)`,
  "while True:",
  "    c, _ = s.accept()",
  "    c.close()",
].join("\n");

const h = tempHome({
  ...base,
  programs: {
    site: {
      argv: ["python3", "-m", "http.server", String(httpPort), "--bind", "127.0.0.1"],
      env: { PYTHONUNBUFFERED: 1 },
      cwd: "site",
      health: { http: `http://127.0.0.1:${httpPort}/` },
      readyTimeoutSeconds: 20,
      statsUrl: `http://127.0.0.1:${httpPort}/stats.json`,
    },
    listener: {
      argv: ["python3", "-c", tcpScript],
      health: { tcp: `127.0.0.1:${tcpPort}` },
      stopSignal: "SIGINT",
      restart: "on-failure",
    },
  },
});
// cwd is relative to the config file: <home>/site, served by http.server, with the stats endpoint in it.
mkdirSync(join(h.home, "site"));
writeFileSync(join(h.home, "site", "stats.json"), JSON.stringify({ files: 3, name: "not a number" }));

const bad = tempHome({
  ...base,
  programs: {
    // Lives, but nothing ever listens on the port its health check names.
    stuck: {
      argv: ["python3", "-c", "import time; time.sleep(600)"],
      health: { tcp: `127.0.0.1:${await freePort()}` },
      readyTimeoutSeconds: 2,
    },
  },
});

after(async () => {
  await h.cleanup();
  await bad.cleanup();
});

const env = h.env;
type Row = { name: string; kind: string; state: string; pid: number; restarts: number; lastExit: string | null };
const status = async (e = env) => json(await cli(["status", "--json"], { env: e }));
const prog = async (name: string, e = env): Promise<Row> =>
  (await status(e)).services.find((s: Row) => s.name === name);

test("up starts the programs and returns once they are healthy", async () => {
  const up = await cli(["up"], { env });
  assert.equal(up.code, 0, up.stderr);
  assert.match(up.stdout, new RegExp(`site: http://127.0.0.1:${httpPort}/`));
  assert.match(up.stdout, new RegExp(`listener: tcp://127.0.0.1:${tcpPort}`));
  for (const name of ["site", "listener"]) {
    const s = await prog(name);
    assert.equal(s.kind, "program");
    assert.equal(s.state, "running");
    assert.ok(pidAlive(s.pid));
  }
  const r = await fetch(`http://127.0.0.1:${httpPort}/stats.json`);
  assert.equal(r.status, 200);
  const table = await cli(["status"], { env });
  assert.match(table.stdout, /site\s+running\s+\d+/);
});

test("kill -9 of a program: restarted, restarts=1", async () => {
  const before = await prog("site");
  process.kill(before.pid, "SIGKILL");
  const after = await until("restart", async () => {
    const s = await prog("site");
    return s.state === "running" && s.pid !== before.pid && s;
  });
  assert.equal(after.restarts, 1);
  assert.equal(after.lastExit, "signal SIGKILL");
});

test("<name> stop|status|start|restart", async () => {
  const before = await prog("site");
  const stop = await cli(["site", "stop"], { env });
  assert.equal(stop.code, 0, stop.stderr);
  assert.match(stop.stdout, /site stopped/);
  await until("old pid gone", async () => !pidAlive(before.pid));
  const st = await cli(["site", "status"], { env });
  assert.equal(st.code, 3);
  assert.match(st.stdout, /site: stopped/);
  const start = await cli(["site", "start"], { env });
  assert.equal(start.code, 0, start.stderr);
  const started = await prog("site");
  assert.equal(started.state, "running");
  const restart = await cli(["site", "restart", "--json"], { env });
  assert.equal(restart.code, 0, restart.stderr);
  const s = json(restart).status;
  assert.equal(s.state, "running");
  assert.notEqual(s.pid, started.pid);
  assert.ok(!pidAlive(started.pid));
});

test("monitor --once --json: RSS for each program; key figures only from a stats endpoint", async () => {
  const r = await cli(["monitor", "--once", "--json"], { env });
  assert.equal(r.code, 0, r.stderr);
  const rows = json(r).services;
  const site = rows.find((x: { name: string }) => x.name === "site");
  const listener = rows.find((x: { name: string }) => x.name === "listener");
  for (const row of [site, listener]) {
    assert.equal(row.state, "running");
    assert.ok(row.rssBytes > 0);
    assert.equal(typeof row.cpuPercent, "number");
  }
  assert.deepEqual(site.stats, { files: 3 });
  assert.deepEqual(listener.stats, {});
});

test("logs/<name>.log gets the program's output, scrubbed", async () => {
  const site = await until("site log", async () => {
    const t = readFileSync(join(h.home, "logs", "site.log"), "utf8");
    return t.includes('"GET / HTTP/1.1" 200') && t;
  });
  assert.ok(site);
  const listener = readFileSync(join(h.home, "logs", "listener.log"), "utf8");
  assert.match(listener, new RegExp(`tcp listening on ${tcpPort}`));
  assert.doesNotMatch(listener, /sekrit-value-123/);
  const logs = await cli(["logs", "listener", "-n", "5"], { env });
  assert.equal(logs.code, 0, logs.stderr);
  assert.match(logs.stdout, /tcp listening/);
});

test("down stops every program", async () => {
  const pids = [(await prog("site")).pid, (await prog("listener")).pid];
  const down = await cli(["down"], { env });
  assert.equal(down.code, 0, down.stderr);
  for (const pid of pids) await until(`pid ${pid} gone`, async () => !pidAlive(pid));
  assert.equal((await prog("site")).state, "stopped");
});

test("supervisor kill -9: status shows the programs orphaned, down stops them, up starts cleanly", async () => {
  assert.equal((await cli(["up"], { env })).code, 0);
  const st = await status();
  const pids = st.services.map((s: Row) => s.pid);
  process.kill(st.supervisor.pid, "SIGKILL");
  await until("supervisor gone", async () => !pidAlive(st.supervisor.pid));
  const orphaned = await status();
  assert.equal(orphaned.supervisor.running, false);
  for (const name of ["site", "listener"]) {
    const s = orphaned.services.find((x: Row) => x.name === name);
    assert.equal(s.state, "orphaned");
    assert.ok(pids.includes(s.pid));
  }
  const table = await cli(["status"], { env });
  assert.match(table.stdout, /site\s+orphaned/);
  const down = await cli(["down"], { env });
  assert.equal(down.code, 0, down.stderr);
  for (const pid of pids) await until(`pid ${pid} gone`, async () => !pidAlive(pid));
  assert.equal((await prog("listener")).state, "stopped");
});

test("a program that never gets healthy fails `up` within its readiness time, saying why", async () => {
  const up = await cli(["up"], { env: bad.env });
  assert.notEqual(up.code, 0);
  assert.match(up.stderr, /stuck: not healthy within 2 s of start/);
  const s = await prog("stuck", bad.env);
  assert.notEqual(s.state, "running");
});

test("restart: never leaves a program that exited failed; a program added to the config starts without down", async () => {
  addPrograms({ once: { argv: ["sh", "-c", "exit 3"], restart: "never" } });
  const start = await cli(["once", "start"], { env: bad.env });
  assert.notEqual(start.code, 0);
  assert.match(start.stderr, /once: exited \(exit code 3\); restart policy: never/);
  const s = await prog("once", bad.env);
  assert.equal(s.state, "failed");
  assert.equal(s.lastExit, "exit code 3");
});

/** Adds programs to the bad home's config file (the running supervisor picks them up on start). */
function addPrograms(programs: Record<string, unknown>): void {
  const cfg = YAML.parse(readFileSync(bad.configFile, "utf8"));
  Object.assign(cfg.programs, programs);
  writeFileSync(bad.configFile, YAML.stringify(cfg));
}

test("a program that cannot be started at all fails at once, saying why", async () => {
  addPrograms({ missing: { argv: ["/nonexistent/program"] } });
  const start = await cli(["missing", "start"], { env: bad.env });
  assert.notEqual(start.code, 0);
  assert.match(start.stderr, /missing: cannot start \/nonexistent\/program: ENOENT/);
  assert.equal((await cli(["missing", "stop"], { env: bad.env })).code, 0);
});

test("what a program started goes with it: its process group on stop, and on a crash before the restart", async () => {
  // The background child ignores SIGTERM: only the group's SIGKILL after stopGraceMs ends it.
  const script = "(trap '' TERM; exec sleep 300) & exec sleep 301";
  addPrograms({ family: { argv: ["sh", "-c", script], stopGraceMs: 500 } });
  const start = await cli(["family", "start"], { env: bad.env });
  assert.equal(start.code, 0, start.stderr);
  const procs = async () =>
    until("both processes", async () => {
      const p = programProcesses(bad.home, "family");
      return p.length === 2 && p;
    });
  const first = await procs();
  const leader = first.find((p) => p.root);
  const child = first.find((p) => !p.root);
  assert.ok(leader && child);
  process.kill(leader.pid, "SIGKILL");
  await until("child of the crashed leader gone", async () => !pidAlive(child.pid));
  const again = await procs();
  assert.ok(again.every((p) => p.pid !== leader.pid && p.pid !== child.pid));
  const stop = await cli(["family", "stop"], { env: bad.env });
  assert.equal(stop.code, 0, stop.stderr);
  for (const p of again) await until(`pid ${p.pid} gone`, async () => !pidAlive(p.pid));
});

test("config errors name the key", async () => {
  const broken = tempHome({
    ...base,
    programs: { relay: { argv: [], health: { tcp: "nowhere" } }, "Bad Name": { argv: ["true"] } },
  });
  try {
    const r = await cli(["status"], { env: broken.env });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /'programs\.relay\.argv'/);
    assert.match(r.stderr, /'programs\.relay\.health\.tcp' must be "host:port"/);
    assert.match(r.stderr, /programs\.Bad Name/);
  } finally {
    await broken.cleanup();
  }
});
