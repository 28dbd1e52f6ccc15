/**
 * A capability is its folder plus one line of the feature list: the echo feature (test/fixtures/echo/, joined
 * through $AMI_STREAMS_FEATURES) gets a validated config section with defaults, a supervised external program
 * (python3 http.server: health check, restart after kill -9, status, down), its op on the CLI, the control API
 * and MCP (listed by the MCP SDK's client, also alone with `mcp --feature echo`) and its own error code.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import YAML from "yaml";
import { binEntry, cli, freePort, json, repoRoot, tempHome, until } from "../../src/test/cli.ts";

const echoPath = join(repoRoot, "test", "fixtures", "echo", "feature.ts");
const port = await freePort();
const base = {
  matrix: { enabled: false },
  media: { enabled: false },
  web: { enabled: false },
  control: { port: 0, healthIntervalMs: 200, stopGraceMs: 3000, backoff: { initialMs: 100 } },
};
const h = tempHome({ ...base, echo: { port, greeting: "ahoy" } }, { AMI_STREAMS_FEATURES: echoPath });
const env = h.env;
after(() => h.cleanup());

type Row = { name: string; kind: string; state: string; pid: number; restarts: number };
const echoRow = async (): Promise<Row> =>
  json(await cli(["status", "--json"], { env })).services.find((s: Row) => s.name === "echo-http");

test("config: the feature's section has defaults and validation that names its keys", async () => {
  const empty = join(h.home, "empty.yaml");
  writeFileSync(empty, "{}\n");
  const shown = json(await cli(["config", "show", "--json", "--config", empty], { env }));
  assert.deepEqual(shown.config?.echo ?? shown.echo, { port: 0, greeting: "hello" });
  const bad = join(h.home, "bad.yaml");
  writeFileSync(bad, YAML.stringify({ echo: { port: 70000, greeting: "", bogus: 1 } }));
  const r = await cli(["config", "validate", "--config", bad], { env });
  assert.notEqual(r.code, 0);
  for (const k of ["'echo.port'", "'echo.greeting'", "echo.bogus"]) assert.match(r.stderr + r.stdout, new RegExp(k));
  // Without the feature, its section is an unknown key: the section really comes from the manifest.
  const plain = { ...env };
  delete plain.AMI_STREAMS_FEATURES;
  const without = await cli(["config", "validate", "--config", h.configFile], { env: plain });
  assert.match(without.stderr + without.stdout, /echo: unknown key/);
});

test("supervisor: up runs the feature's program, health-checked; kill -9 restarts it; status shows it", async () => {
  const up = await cli(["up"], { env });
  assert.equal(up.code, 0, up.stderr);
  const row = await echoRow();
  assert.equal(row.kind, "program");
  assert.equal(row.state, "running");
  assert.equal((await fetch(`http://127.0.0.1:${port}/`)).status, 200);
  process.kill(row.pid, "SIGKILL");
  const back = await until(
    "echo-http restarted",
    async () => {
      const r = await echoRow();
      return r.state === "running" && r.restarts === 1 && r.pid !== row.pid ? r : undefined;
    },
    20_000,
  );
  assert.ok(back);
  assert.equal((await fetch(`http://127.0.0.1:${port}/`)).status, 200);
  const st = await cli(["echo-http", "status"], { env });
  assert.equal(st.code, 0, st.stderr);
});

test("ops: CLI, control API (with the feature's error code) and MCP", async () => {
  const r = await cli(["echo", "greet", "ada"], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), "ahoy, ada");

  const info = JSON.parse(readFileSync(join(h.home, "run", "control.json"), "utf8"));
  const token = readFileSync(join(h.home, "run", "control.token"), "utf8").trim();
  const auth = { authorization: `Bearer ${token}`, "content-type": "application/json" };
  const ok = await fetch(`${info.url}/api/ops/echo.greet`, { method: "POST", headers: auth, body: '{"name":"bo"}' });
  assert.equal(ok.status, 200);
  assert.equal(JSON.stringify(await ok.json()).includes("ahoy, bo"), true);
  const no = await fetch(`${info.url}/api/ops/echo.greet`, {
    method: "POST",
    headers: auth,
    body: '{"name":"nobody"}',
  });
  assert.equal(no.status, 409);
  assert.equal((await no.json()).errcode, "AMI_ECHO_REFUSED");

  for (const [args, expectMatrix] of [
    [[], true],
    [["--feature", "echo"], false],
  ] as const) {
    const client = new Client({ name: "feature-test", version: "1" });
    await client.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [binEntry, "mcp", ...args],
        env: env as Record<string, string>,
      }),
    );
    const names = (await client.listTools()).tools.map((t) => t.name);
    assert.ok(names.includes("echo_greet"), names.join(","));
    assert.ok(names.includes("echo_http_start"), names.join(","));
    assert.equal(names.includes("matrix_room_send"), expectMatrix, names.join(","));
    const res = await client.callTool({ name: "echo_greet", arguments: { name: "mcp" } });
    assert.deepEqual(res.structuredContent, { text: "ahoy, mcp" });
    await client.close();
  }
  const unknown = await cli(["mcp", "--feature", "nope"], { env });
  assert.notEqual(unknown.code, 0);
  assert.match(unknown.stderr, /unknown feature\(s\): nope/);
});

test("down stops the feature's program", async () => {
  const pid = (await echoRow()).pid;
  assert.equal((await cli(["down"], { env })).code, 0);
  assert.throws(() => process.kill(pid, 0));
});
