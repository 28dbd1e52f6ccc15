import assert from "node:assert/strict";
import { test } from "node:test";
import { defaultConfig, validateConfig } from "../config.ts";
import { defineProgram } from "./program.ts";

test("programs: defaults filled in, env values become strings", () => {
  const { config, issues } = validateConfig({
    programs: {
      relay: { argv: ["turnserver"], env: { PORT: 3478, VERBOSE: true }, health: { tcp: "127.0.0.1:3478" } },
    },
  });
  assert.deepEqual(issues, []);
  assert.deepEqual(config?.programs.relay, {
    enabled: true,
    argv: ["turnserver"],
    env: { PORT: "3478", VERBOSE: "true" },
    cwd: null,
    health: { tcp: "127.0.0.1:3478" },
    readyTimeoutSeconds: 30,
    stopSignal: "SIGTERM",
    stopGraceMs: 10000,
    restart: "always",
    statsUrl: null,
  });
});

test("programs: errors name the key", () => {
  const { issues } = validateConfig({
    programs: {
      relay: { argv: [], restart: "sometimes", health: { tcp: "localhost" } },
      obs: { argv: ["obs"], health: { http: "ftp://x/" } },
      web: { argv: ["x"] },
      "Not-OK": { argv: ["x"] },
      ok: { argv: ["x"], extra: 1 },
      probe: { argv: ["x"], health: { udp: "127.0.0.1:1" } },
    },
  });
  const keys = issues.map((i) => i.key);
  for (const k of [
    "programs.relay.argv",
    "programs.relay.restart",
    "programs.relay.health.tcp",
    "programs.obs.health.http",
    "programs.probe.health",
    "programs.web",
    "programs.Not-OK",
    "programs.ok.extra",
  ])
    assert.ok(keys.includes(k), `${k} in ${JSON.stringify(issues)}`);
  const argv = issues.find((i) => i.key === "programs.relay.argv");
  assert.match(argv?.message ?? "", /^'programs\.relay\.argv' /);
  const health = issues.find((i) => i.key === "programs.probe.health");
  assert.match(health?.message ?? "", /must be \{ tcp: "host:port" \}/);
});

test("defineProgram: a feature's typed program, spec from the config", () => {
  const p = defineProgram({
    name: "workerd",
    summary: "edge functions",
    spec: (c) => ({ argv: ["workerd", "serve", `--port=${c.control.port + 1}`], health: { tcp: "127.0.0.1:8471" } }),
  });
  const spec = p.spec(defaultConfig());
  assert.deepEqual(spec.argv, ["workerd", "serve", "--port=8471"]);
  assert.equal(spec.restart, "always");
  assert.equal(p.enabled(defaultConfig()), true);
  assert.throws(() => defineProgram({ name: "help", summary: "", spec: () => ({ argv: ["x"] }) }));
  assert.throws(() => defineProgram({ name: "Bad Name", summary: "", spec: () => ({ argv: ["x"] }) }));
});
