/** scripts/setup-shell.sh: every seed function and alias exists in bash, calls the CLI, and unbuilt ones fail clearly. */
import assert from "node:assert/strict";
import { tmpdir } from "node:os";
import { after, test } from "node:test";
import { shell, tempHome } from "../../src/test/cli.ts";

const h = tempHome({ matrix: { enabled: false } });
after(() => h.cleanup());

const functions = [
  "ami-streams-mcp",
  "ami-matrix-start",
  "ami-matrix-stop",
  "ami-matrix-status",
  "ami-matrix-config",
  "ami-streams-monitor",
  "ami-streams-test",
  "ami-cdn-deploy",
  "ami-p2p-start",
  "ami-stream-start",
  "ami-edge-deploy",
];
const aliases: Record<string, string> = {
  asm: "ami-streams-monitor",
  ast: "ami-streams-test",
  ams: "ami-streams-mcp",
  amatstart: "ami-matrix-start",
  amatstop: "ami-matrix-stop",
  amatst: "ami-matrix-status",
  amatc: "ami-matrix-config",
  acdnd: "ami-cdn-deploy",
  ap2p: "ami-p2p-start",
  astm: "ami-stream-start",
};

test("every seed function and alias is defined after sourcing (from any directory)", async () => {
  const r = await shell(
    [...functions.map((f) => `type -t ${f}`), ...Object.keys(aliases).map((a) => `alias ${a}`)].join("\n"),
    { env: h.env, cwd: tmpdir() },
  );
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split("\n");
  assert.deepEqual(
    lines.slice(0, functions.length),
    functions.map(() => "function"),
  );
  for (const [a, target] of Object.entries(aliases)) assert.ok(lines.includes(`alias ${a}='${target}'`), `alias ${a}`);
});

test("functions pass their arguments to the CLI", async () => {
  const r = await shell("asm --once --json", { env: h.env, cwd: tmpdir() });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).supervisor.running, false);
  const usage = await shell("amatc", { env: h.env });
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /usage: ami-matrix-config edit\|validate/);
});

test("astm is `stream start`: it asks for the source it pulls", async () => {
  const r = await shell("astm --path live/cam", { env: h.env });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /source.*required/);
  assert.equal(r.stdout, "");
});

test("ami-edge-deploy is `edge deploy`: it asks for the module it deploys", async () => {
  const r = await shell("ami-edge-deploy --function f", { env: h.env });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--file/);
});

test("acdnd is `cdn deploy`: a bad region is refused before anything starts", async () => {
  const r = await shell("acdnd --region US_EAST", { env: h.env });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /region.*lowercase/);
  assert.equal(r.stdout, "");
});

test("ap2p --bootstrap is `p2p start --bootstrap`: with p2p disabled it names the key (exit 2)", async () => {
  const r = await shell("ap2p --bootstrap", { env: h.env });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /p2p is disabled in the config \(p2p\.enabled: false\)/);
  assert.equal(r.stdout, "");
});
