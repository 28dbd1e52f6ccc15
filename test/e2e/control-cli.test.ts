/** The generated CLI as a user runs it: help, exit codes, --json, validation messages, config commands. */
import assert from "node:assert/strict";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { after, test } from "node:test";
import { cli, json, repoRoot, tempHome } from "../../src/test/cli.ts";

const h = tempHome({ matrix: { enabled: false } });
after(() => h.cleanup());
const env = h.env;

test("--help at every level exits 0; unknown or missing commands exit 2", async () => {
  const root = await cli(["--help"], { env });
  assert.equal(root.code, 0);
  assert.match(root.stdout, /Commands:[\s\S]*\bup\b[\s\S]*Exit codes:/);
  const group = await cli(["config", "--help"], { env });
  assert.equal(group.code, 0);
  assert.match(group.stdout, /validate/);
  const leaf = await cli(["logs", "--help"], { env });
  assert.equal(leaf.code, 0);
  assert.match(leaf.stdout, /-f, --follow/);
  assert.equal((await cli(["frobnicate"], { env })).code, 2);
  assert.equal((await cli([], { env })).code, 2);
  assert.equal((await cli(["config"], { env })).code, 2);
});

test("--json prints the result on stdout; validation errors name the flag and exit 2", async () => {
  const v = await cli(["version", "--json"], { env });
  assert.equal(v.code, 0, v.stderr);
  assert.equal(json(v).node, process.version);
  const bad = await cli(["logs", "supervisor", "-n", "lots"], { env });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--lines: expected a number/);
  const unknown = await cli(["status", "--verbose"], { env });
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /--verbose/);
  const badJson = await cli(["logs", "nosuch", "--json"], { env });
  assert.equal(badJson.code, 2);
  assert.equal(json(badJson).error.code, "AMI_INVALID_INPUT");
});

test("status with nothing running exits 0 and says so", async () => {
  const r = await cli(["status", "--json"], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(json(r).supervisor.running, false);
  assert.match((await cli(["status"], { env })).stdout, /supervisor: not running/);
  const down = await cli(["down"], { env });
  assert.equal(down.code, 0);
  assert.match(down.stdout, /nothing is running/);
});

test("p2p start --bootstrap takes its flag and, with p2p disabled, says which key enables it", async () => {
  const r = await cli(["p2p", "start", "--bootstrap", "--json"], { env });
  assert.equal(r.code, 2);
  assert.equal(json(r).error.code, "AMI_INVALID_CONFIG");
  assert.match(r.stderr, /p2p\.enabled/);
});

test("cdn deploy / list / purge / stats / remove: two regional nodes in front of a shield, through the CLI", async () => {
  let originHits = 0;
  const origin = createServer((_req, res) => {
    originHits++;
    res.writeHead(200, { "cache-control": "max-age=600", "surrogate-key": "promo" });
    res.end("hello");
  });
  await new Promise<void>((r) => origin.listen(0, "127.0.0.1", r));
  const originUrl = `http://127.0.0.1:${(origin.address() as { port: number }).port}`;
  try {
    const shield = json(await cli(["cdn", "deploy", "--region", "shield", "--origin", originUrl, "--json"], { env }));
    assert.equal(shield.up, true);
    const eu = await cli(["cdn", "deploy", "--region", "eu-west-1", "--origin", originUrl, "--parent", shield.url], {
      env,
    });
    assert.equal(eu.code, 0, eu.stderr);
    const dup = await cli(["cdn", "deploy", "--region", "eu-west-1", "--origin", originUrl], { env });
    assert.equal(dup.code, 2);
    assert.match(dup.stderr, /already has a node/);
    const nodes = json(await cli(["cdn", "list", "--json"], { env })).nodes as { region: string; url: string }[];
    assert.deepEqual(nodes.map((n) => n.region).sort(), ["eu-west-1", "shield"]);
    const euUrl = nodes.find((n) => n.region === "eu-west-1")?.url as string;
    for (let i = 0; i < 3; i++) assert.equal(await (await fetch(`${euUrl}/promo`)).text(), "hello");
    assert.equal(originHits, 1);
    const purge = json(await cli(["cdn", "purge", "--tag", "promo", "--json"], { env }));
    assert.equal(purge.confirmed, true);
    assert.deepEqual(
      purge.nodes.map((n: { purged: number }) => n.purged),
      [1, 1],
    );
    await fetch(`${euUrl}/promo`);
    assert.equal(originHits, 2);
    const stats = json(await cli(["cdn", "stats", "--region", "eu-west-1", "--json"], { env }));
    assert.equal(stats.nodes[0].stats.hits, 2);
  } finally {
    for (const region of ["eu-west-1", "shield"]) await cli(["cdn", "remove", "--region", region], { env });
    origin.close();
  }
  assert.match((await cli(["cdn", "list"], { env })).stdout, /no edge nodes/);
});

test("config validate prints every error with its key path and exits 2", async () => {
  const bad = join(h.home, "bad.yaml");
  writeFileSync(bad, "matrix:\n  port: -1\n  bogus: 1\ncontrol:\n  stopGraceMs: fast\n");
  const r = await cli(["config", "validate", bad], { env });
  assert.equal(r.code, 2);
  assert.match(r.stdout, /matrix\.port/);
  assert.match(r.stdout, /matrix\.bogus: unknown key/);
  assert.match(r.stdout, /control\.stopGraceMs/);
  const j = json(await cli(["config", "validate", "--json", "--config", bad], { env }));
  assert.equal(j.valid, false);
  assert.equal(j.issues.length, 3);
  const ok = await cli(["config", "validate", join(repoRoot, "config", "ami-streams.example.yaml")], { env });
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  const m = json(await cli(["matrix", "config", "validate", bad, "--json"], { env }));
  assert.deepEqual(m.issues.map((i: { key: string }) => i.key).sort(), ["matrix.bogus", "matrix.port"]);
});

test("config show/path/init", async () => {
  const show = json(await cli(["config", "show", "--json"], { env }));
  assert.equal(show.config.matrix.enabled, false);
  assert.equal(json(await cli(["config", "path", "--json"], { env })).file, h.configFile);
  const target = join(h.home, "init", "config.yaml");
  assert.equal((await cli(["config", "init", "--path", target], { env })).code, 0);
  assert.equal(
    readFileSync(target, "utf8"),
    readFileSync(join(repoRoot, "config", "ami-streams.example.yaml"), "utf8"),
  );
  const again = await cli(["config", "init", "--path", target], { env });
  assert.equal(again.code, 2);
  assert.match(again.stderr, /already exists.*--force/);
  assert.equal((await cli(["config", "init", "--path", target, "--force"], { env })).code, 0);
});

test("matrix config edit saves only a config that validates", async () => {
  const file = join(h.home, "edit.yaml");
  writeFileSync(file, "matrix:\n  port: 8008\n");
  // A scripted $EDITOR: replaces the temp copy's content with $NEW_CONTENT.
  const editor = join(h.home, "editor.sh");
  writeFileSync(editor, '#!/bin/sh\nprintf "%s" "$NEW_CONTENT" > "$1"\n');
  chmodSync(editor, 0o755);
  const invalid = await cli(["matrix", "config", "edit", file], {
    env: { ...env, EDITOR: editor, NEW_CONTENT: "matrix:\n  port: nope\n" },
  });
  assert.equal(invalid.code, 2);
  assert.match(invalid.stderr, /matrix\.port/);
  assert.equal(readFileSync(file, "utf8"), "matrix:\n  port: 8008\n", "an invalid edit must not touch the file");
  const valid = await cli(["matrix", "config", "edit", file], {
    env: { ...env, EDITOR: editor, NEW_CONTENT: "matrix:\n  port: 8010\n" },
  });
  assert.equal(valid.code, 0, valid.stderr);
  assert.equal(readFileSync(file, "utf8"), "matrix:\n  port: 8010\n");
  assert.ok(!existsSync(`${file}.tmp`));
});

test("bin/ami-streams picks Node >= 24: the repo's own, else PATH's, else fails clearly", async () => {
  const { copyFileSync, mkdirSync, symlinkSync } = await import("node:fs");
  const { spawnSync } = await import("node:child_process");
  // A copy of the wrapper in a tree without node_modules, next to a tiny entry that prints the Node version.
  const fake = join(h.home, "fake");
  mkdirSync(join(fake, "bin"), { recursive: true });
  copyFileSync(join(repoRoot, "bin", "ami-streams"), join(fake, "bin", "ami-streams"));
  writeFileSync(join(fake, "bin", "ami-streams.mjs"), "console.log(process.version)\n");
  const oldNode = join(h.home, "oldnode");
  mkdirSync(oldNode);
  writeFileSync(join(oldNode, "node"), "#!/bin/sh\necho 20\n");
  chmodSync(join(oldNode, "node"), 0o755);
  const run = (path: string) =>
    spawnSync(join(fake, "bin", "ami-streams"), [], { env: { PATH: path }, encoding: "utf8" });
  const ok = run(`${join(repoRoot, "node_modules", ".bin")}:/usr/bin:/bin`);
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(ok.stdout.trim(), process.version);
  const old = run(`${oldNode}:/usr/bin:/bin`);
  assert.equal(old.status, 127);
  assert.match(old.stderr, /needs Node\.js >= 24/);
  // Linked onto PATH from elsewhere, the real wrapper still finds the repo's node.
  const link = join(h.home, "linked");
  symlinkSync(join(repoRoot, "bin", "ami-streams"), link);
  const v = spawnSync(link, ["version"], { env: { ...env, PATH: "/usr/bin:/bin" }, encoding: "utf8" });
  assert.equal(v.status, 0, v.stderr);
  assert.match(v.stdout, new RegExp(`node ${process.version}`));
});
