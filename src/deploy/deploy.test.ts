/**
 * `deploy compose` and `deploy systemd`, checked by the tools that would run them: Debian's docker-compose
 * (`config`), Caddy (`caddy validate`), systemd-analyze (`verify`, `security`), our own validators; the image is
 * built only where a Docker engine answers (never on these machines: skipped with the reason).
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import YAML from "yaml";
import { validateConfig } from "../config.ts";
import { repoRoot } from "../control/bin-path.ts";
import type { OpContext } from "../core/ops.ts";
import { parseSynapseYaml, validateSynapseConfig } from "../matrix/synapse-config.ts";
import { freePort, until } from "../test/cli.ts";
import { deployComposeOp, deploySystemdOp } from "./ops.ts";
import { composeConfig, dockerEngine } from "./project.ts";

const tmp = mkdtempSync(join(tmpdir(), "ami-deploy-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const ctx = { progress() {}, print() {} } as unknown as OpContext;
const has = (bin: string, args = ["--version"]) => !spawnSync(bin, args, { encoding: "utf8" }).error;
const mode = (p: string) => statSync(p).mode & 0o777;
const read = (dir: string, f: string) => readFileSync(join(dir, f), "utf8");
const envFile = (dir: string) =>
  Object.fromEntries(
    read(dir, ".env")
      .split("\n")
      .filter((l) => l && !l.startsWith("#"))
      .map((l) => l.split("=", 2) as [string, string]),
  );

/** Text a sample config leaves for the operator to fill in. */
const PLACEHOLDERS = /changeme|change_me|<[A-Z _]+>|YOUR_|REPLACE|TODO|xxxxx/i;

async function compose(engine: "ami" | "synapse", extra: Record<string, unknown> = {}) {
  const dir = (extra.dir as string | undefined) ?? join(tmp, `${engine}-${Math.random().toString(36).slice(2)}`);
  const out = await deployComposeOp.run(
    deployComposeOp.input.parse({ dir, domain: "example.org", engine, ...extra }),
    ctx,
  );
  return { dir, out };
}

const composeTool = composeConfig(tmp).tool;

for (const engine of ["ami", "synapse"] as const) {
  test(`compose --engine ${engine}: docker-compose config accepts it, secrets random and private, no placeholders`, async (t) => {
    const { dir, out } = await compose(engine);
    if (!composeTool) t.diagnostic("no docker compose / docker-compose here: the Compose check is not run");
    else assert.ok(out.composeCheck.ok, out.composeCheck.output);
    const hs = engine === "ami" ? "ami-streams" : "synapse";
    // What Compose itself makes of the file (interpolated from .env).
    if (composeTool) {
      const r = spawnSync(composeTool.split(" ")[0], [...composeTool.split(" ").slice(1), "config"], {
        cwd: dir,
        encoding: "utf8",
      });
      assert.equal(r.status, 0, r.stderr);
      const resolved = YAML.parse(r.stdout);
      assert.deepEqual(
        Object.keys(resolved.services).sort(),
        [hs, "caddy", "coturn", "element", "postgres", "redis"].sort(),
      );
      assert.equal(resolved.services.postgres.environment.POSTGRES_PASSWORD, envFile(dir).POSTGRES_PASSWORD);
      assert.equal(resolved.services.redis.environment.REDIS_PASSWORD, envFile(dir).REDIS_PASSWORD);
      assert.ok(
        resolved.services[hs].user || resolved.services[hs].environment.UID,
        "homeserver runs as the files' owner",
      );
    }
    const files = out.files;
    for (const f of [
      ".env",
      "coturn/turnserver.conf",
      engine === "ami" ? "ami/config.yaml" : "synapse/homeserver.yaml",
    ])
      assert.equal(mode(join(dir, f)), 0o600, f);
    for (const f of ["compose.yaml", "caddy/Caddyfile", "element/config.json", "caddy/srv/.well-known/matrix/server"])
      assert.equal(mode(join(dir, f)), 0o644, f);
    for (const f of files) assert.doesNotMatch(read(dir, f), PLACEHOLDERS, f);
    const env = envFile(dir);
    assert.match(env.POSTGRES_PASSWORD, /^[A-Za-z0-9_-]{43}$/);
    assert.notEqual(env.POSTGRES_PASSWORD, env.REDIS_PASSWORD);
    // The same secret wherever two services must agree.
    const turnSecret = /static-auth-secret=(\S+)/.exec(read(dir, "coturn/turnserver.conf"))?.[1];
    assert.ok(turnSecret && turnSecret.length >= 43);
    if (engine === "ami") {
      const raw = YAML.parse(read(dir, "ami/config.yaml"));
      assert.deepEqual(validateConfig(raw).issues, []);
      assert.equal(raw.matrix.database, `postgres://ami:${env.POSTGRES_PASSWORD}@postgres:5432/ami_streams`);
      assert.equal(raw.matrix.voip.turnSharedSecret, turnSecret);
      assert.equal(raw.matrix.redis, `redis://:${env.REDIS_PASSWORD}@redis:6379`);
      // X-Forwarded-For is believed from the stack's own network only, whose subnet the Compose file pins.
      const subnet = YAML.parse(read(dir, "compose.yaml")).networks.default.ipam.config[0].subnet;
      assert.deepEqual(raw.matrix.trustedProxies, [subnet]);
      assert.match(read(dir, "caddy/Caddyfile"), /header_up X-Forwarded-For \{remote_host\}/);
      assert.equal(raw.matrix.serverName, "example.org");
      assert.equal(raw.matrix.registration.enabled, false);
      assert.ok(existsSync(join(dir, "ami/data")));
      assert.equal(mode(join(dir, "ami/data")), 0o700);
    } else {
      const hsYaml = parseSynapseYaml(read(dir, "synapse/homeserver.yaml")) as Record<string, any>;
      assert.deepEqual(validateSynapseConfig(hsYaml), []);
      assert.equal(hsYaml.database.args.password, env.POSTGRES_PASSWORD);
      assert.equal(hsYaml.redis.password, env.REDIS_PASSWORD);
      assert.equal(hsYaml.turn_shared_secret, turnSecret);
      assert.equal(hsYaml.enable_registration, false);
      assert.equal(hsYaml.worker_app, undefined);
      assert.match(read(dir, "synapse/signing.key"), /^ed25519 a_[A-Za-z0-9]{4} [A-Za-z0-9+/]{43}\n$/);
      assert.equal(mode(join(dir, "synapse/signing.key")), 0o600);
    }
    // Element Web's config points at our homeserver; the well-known answers agree with it.
    const element = JSON.parse(read(dir, "element/config.json"));
    assert.deepEqual(element.default_server_config["m.homeserver"], {
      base_url: "https://matrix.example.org",
      server_name: "example.org",
    });
    assert.deepEqual(JSON.parse(read(dir, "caddy/srv/.well-known/matrix/server")), {
      "m.server": "matrix.example.org:443",
    });
    assert.equal(
      JSON.parse(read(dir, "caddy/srv/.well-known/matrix/client"))["m.homeserver"].base_url,
      element.default_server_config["m.homeserver"].base_url,
    );
    assert.match(read(dir, "caddy/Caddyfile"), new RegExp(`reverse_proxy ${hs}:8008`));
    assert.ok(out.next.some((l) => /docker compose up -d/.test(l)));
  });
}

test("compose: two runs make different secrets; an existing directory is refused without --force", async () => {
  const a = await compose("ami");
  const b = await compose("ami");
  assert.notEqual(envFile(a.dir).POSTGRES_PASSWORD, envFile(b.dir).POSTGRES_PASSWORD);
  const before = read(a.dir, ".env");
  await assert.rejects(
    deployComposeOp.run(deployComposeOp.input.parse({ dir: a.dir, domain: "example.org" }), ctx),
    (e: { code?: string; message: string }) => e.code === "AMI_INVALID_INPUT" && /--force/.test(e.message),
  );
  assert.equal(read(a.dir, ".env"), before);
  writeFileSync(join(a.dir, "mine.txt"), "kept");
  await deployComposeOp.run(deployComposeOp.input.parse({ dir: a.dir, domain: "example.org", force: true }), ctx);
  assert.notEqual(read(a.dir, ".env"), before);
  assert.equal(read(a.dir, "mine.txt"), "kept");
  assert.equal(mode(join(a.dir, ".env")), 0o600);
});

test("compose: a bad or missing domain is refused with a clear error; --image skips the build", async () => {
  await assert.rejects(compose("ami", { domain: "https://example.org" }), /not a DNS name/);
  const localhost = { ...ctx, config: { matrix: { serverName: "localhost" } } } as unknown as OpContext;
  await assert.rejects(
    deployComposeOp.run(deployComposeOp.input.parse({ dir: join(tmp, "nodomain") }), localhost),
    /give --domain/,
  );
  assert.ok(!existsSync(join(tmp, "nodomain")));
  // Values that land in config files cannot smuggle in directives.
  assert.throws(() => deployComposeOp.input.parse({ email: "a@b.org\n}\nevil.org {" }), /e-mail/);
  assert.throws(() => deployComposeOp.input.parse({ externalIp: "1.2.3.4\nallow-loopback-peers" }), /IP address/);
  const natted = await compose("ami", { externalIp: "203.0.113.7" });
  assert.match(read(natted.dir, "coturn/turnserver.conf"), /^external-ip=203\.0\.113\.7$/m);
  // Where it cannot write: a clear error, not a crash (nor the endless loop a recursive mkdir gets into in /proc).
  writeFileSync(join(tmp, "a-file"), "");
  await assert.rejects(compose("ami", { dir: join(tmp, "a-file") }), /exists and is not a directory/);
  await assert.rejects(compose("ami", { dir: "/proc/no-such/dir" }), /cannot write \/proc\/no-such\/dir: ENOENT/);
  const { dir } = await compose("ami", { image: "registry.example.org/ami-streams:1" });
  const c = YAML.parse(read(dir, "compose.yaml"));
  assert.equal(c.services["ami-streams"].image, "registry.example.org/ami-streams:1");
  assert.equal(c.services["ami-streams"].build, undefined);
});

test("compose --no-federation: both engines' configs say so and still validate", async () => {
  const syn = await compose("synapse", { federation: false });
  const hs = parseSynapseYaml(read(syn.dir, "synapse/homeserver.yaml")) as Record<string, any>;
  assert.deepEqual(validateSynapseConfig(hs), []);
  assert.deepEqual(hs.listeners[0].resources[0].names, ["client"]);
  assert.deepEqual(hs.federation_domain_whitelist, []);
  const ami = await compose("ami", { federation: false });
  const raw = YAML.parse(read(ami.dir, "ami/config.yaml"));
  assert.equal(raw.matrix.federation.enabled, false);
  assert.deepEqual(validateConfig(raw).issues, []);
});

test("compose: docker-compose config fails on a broken project (the check can fail)", {
  skip: !composeTool && "no docker compose / docker-compose here",
}, async () => {
  const { dir } = await compose("ami");
  writeFileSync(join(dir, ".env"), "# emptied\n");
  const r = composeConfig(dir);
  assert.equal(r.ok, false);
  assert.match(r.output, /POSTGRES_PASSWORD/);
});

test("the Caddyfile passes `caddy validate`", {
  skip: !has("caddy", ["version"]) && "caddy is not installed (Debian: caddy)",
}, async () => {
  const { dir } = await compose("synapse", { email: "ops@example.org" });
  const r = spawnSync("caddy", ["validate", "--config", join(dir, "caddy/Caddyfile"), "--adapter", "caddyfile"], {
    encoding: "utf8",
    env: { ...process.env, XDG_DATA_HOME: join(tmp, "caddy-data"), XDG_CONFIG_HOME: join(tmp, "caddy-config") },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout + r.stderr, /Valid configuration/);
});

test("the generated turnserver.conf: coturn reads every line and listens", {
  skip: !has("turnserver", ["--help"]) && "coturn is not installed (Debian: coturn)",
}, async () => {
  const { dir } = await compose("ami");
  const port = await freePort();
  // Only the address changes (the container uses the host's network and 3478).
  const child = spawn(
    "turnserver",
    ["-c", join(dir, "coturn/turnserver.conf"), "--listening-ip", "127.0.0.1", "--listening-port", String(port)],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let log = "";
  child.stdout.on("data", (d) => (log += d));
  child.stderr.on("data", (d) => (log += d));
  try {
    await until("coturn listening", async () => {
      if (child.exitCode !== null) throw new Error(`coturn exited ${child.exitCode}:\n${log}`);
      return new Promise<boolean>((r) => {
        const s = connect(port, "127.0.0.1", () => {
          s.destroy();
          r(true);
        }).on("error", () => r(false));
      });
    });
  } finally {
    child.kill("SIGKILL");
  }
  assert.doesNotMatch(log, /Bad configuration|unknown option|CONFIG ERROR/i, log);
  assert.match(log, /Default realm: example\.org/, "the file's settings were read");
});

test("deploy systemd: the unit passes systemd-analyze verify and rates as well sandboxed", {
  skip: !has("systemd-analyze") && "systemd-analyze is not installed (Debian: systemd)",
}, async () => {
  const dir = join(tmp, "systemd");
  const out = await deploySystemdOp.run(deploySystemdOp.input.parse({ dir, domain: "example.org" }), ctx);
  assert.equal(out.verify.tool, "systemd-analyze verify");
  assert.ok(out.verify.ok, out.verify.output);
  assert.ok(out.exposure !== null && out.exposure <= 2.5, `exposure ${out.exposure}`);
  const unit = read(dir, "ami-streams.service");
  assert.match(unit, /^User=ami-streams$/m);
  assert.match(unit, /^ExecStart=.*\/bin\/ami-streams supervise --all$/m);
  assert.match(unit, /^NoNewPrivileges=yes$/m);
  assert.match(read(dir, "ami-streams.sysusers.conf"), /^u ami-streams /m);
  assert.equal(mode(join(dir, "config.yaml")), 0o600);
  assert.deepEqual(validateConfig(YAML.parse(read(dir, "config.yaml"))).issues, []);
  // The check can fail: a unit with a bad value and a missing binary is refused.
  writeFileSync(join(tmp, "broken.service"), unit.replace("ProtectSystem=strict", "ProtectSystem=bogus"));
  const { verifyUnit } = await import("./verify.ts");
  const bad = verifyUnit(join(tmp, "broken.service"));
  assert.equal(bad.ok, false);
  assert.match(bad.output, /protect system value/i);
});

test("the Dockerfile: Node 24, non-root, a health check, the supervisor as entry point", () => {
  const df = readFileSync(join(repoRoot, "Dockerfile"), "utf8");
  assert.match(df, /^ARG NODE_VERSION=24$/m);
  assert.match(df, /^FROM node:\$\{NODE_VERSION\}-/m);
  assert.match(df, /^USER ami:ami$/m);
  assert.match(df, /^HEALTHCHECK /m);
  assert.match(df, /^CMD \["supervise", "--all"\]$/m);
  assert.ok(existsSync(join(repoRoot, "bin", "ami-streams")));
  assert.ok(existsSync(join(repoRoot, ".dockerignore")));
  // The entry point's flag exists.
  const help = spawnSync(join(repoRoot, "bin", "ami-streams"), ["supervise", "--help"], { encoding: "utf8" });
  assert.match(help.stdout + help.stderr, /--all/);
});

test("the image builds", async (t) => {
  const engine = dockerEngine();
  if (!engine.available) return t.skip(`no Docker engine here (${engine.detail})`);
  const r = spawnSync("docker", ["build", "-q", "-t", "ami-streams:test", repoRoot], {
    encoding: "utf8",
    timeout: 1_800_000,
  });
  assert.equal(r.status, 0, r.stderr);
});
