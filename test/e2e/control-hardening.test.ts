/**
 * Supervisor hardening with real processes: crash restarts wait initialMs every time once the service was healthy
 * in between (capped, reset backoff); a supervisor that died with its pid files gone still leaves every service
 * visible to `status` (orphaned) and stoppable by `down` (found in /proc by runtime home); `media restart` after a
 * config edit serves and health-checks the new address.
 */
import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import YAML from "yaml";
import { pidAlive } from "../../src/control/proc.ts";
import { cli, freePort, json, tempHome, testServiceHome, until } from "../../src/test/cli.ts";

const h = await testServiceHome();
const env = h.env;
const m = tempHome();
after(async () => {
  await h.cleanup();
  await m.cleanup();
});
const svc = async () =>
  json(await cli(["status", "--json"], { env })).services.find((s: { name: string }) => s.name === "testsvc");

test("repeated crashes of a service that was healthy in between restart after initialMs each time", async () => {
  const up = await cli(["up"], { env });
  assert.equal(up.code, 0, up.stderr);
  for (let i = 0; i < 4; i++) {
    const before = await until("running", async () => {
      const s = await svc();
      return s.state === "running" && s;
    });
    process.kill(before.pid, "SIGKILL");
    await until("restart", async () => {
      const s = await svc();
      return s.state === "running" && s.pid !== before.pid;
    });
  }
  assert.equal((await svc()).restarts, 4);
  const delays = readFileSync(join(h.home, "logs", "supervisor.log"), "utf8")
    .split("\n")
    .filter((l) => l.includes("restarting"))
    .map((l) => JSON.parse(l).delayMs);
  assert.deepEqual(delays, [100, 100, 100, 100], "without the reset they would be 100, 200, 400, 800");
});

test("a dead supervisor without pid files: status shows the orphan, down stops it", async () => {
  const st = json(await cli(["status", "--json"], { env }));
  const orphan = st.services.find((s: { name: string }) => s.name === "testsvc").pid;
  process.kill(st.supervisor.pid, "SIGKILL");
  // As if the disk had been too full to write them.
  for (const f of ["supervisor.pid", "testsvc.pid", "control.json"]) rmSync(join(h.home, "run", f), { force: true });
  await until("supervisor gone", async () => !pidAlive(st.supervisor.pid));
  const after = await svc();
  assert.equal(after.state, "orphaned");
  assert.equal(after.pid, orphan);
  assert.ok(pidAlive(orphan), "the service outlived its supervisor");
  const down = await cli(["down", "--json"], { env });
  assert.equal(down.code, 0, down.stderr);
  assert.equal(json(down).stopped, true);
  await until("orphan gone", async () => !pidAlive(orphan) || !readFileSync(`/proc/${orphan}/cmdline`, "utf8"));
  assert.equal((await svc()).state, "stopped");
  assert.match((await cli(["down"], { env })).stdout, /nothing is running/);
});

test("media restart after a config edit uses the new port", async () => {
  const media = (httpPort: number) => ({
    rtmpPort: 0,
    srtPort: 0,
    rtsp: { port: 0 },
    httpPort,
    webrtc: { enabled: false },
  });
  const config = (httpPort: number) => ({
    matrix: { enabled: false },
    web: { enabled: false },
    control: { port: 0 },
    media: media(httpPort),
  });
  writeFileSync(m.configFile, YAML.stringify(config(await freePort())));
  const up = await cli(["up"], { env: m.env });
  assert.equal(up.code, 0, up.stderr);
  const port = await freePort();
  writeFileSync(m.configFile, YAML.stringify(config(port)));
  const r = await cli(["media", "restart", "--json"], { env: m.env, timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(json(r).status.url, `http://127.0.0.1:${port}`);
  assert.equal(json(r).status.state, "running");
  assert.equal((await fetch(`http://127.0.0.1:${port}/health`)).status, 200);
});
