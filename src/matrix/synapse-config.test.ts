import assert from "node:assert/strict";
import { test } from "node:test";
import YAML from "yaml";
import { synapseHomeserverYaml } from "../deploy/synapse.ts";
import { looksLikeSynapse, parseSynapseYaml, validateSynapseConfig } from "./synapse-config.ts";

const secret = (c: string) => c.repeat(43);

/** The homeserver.yaml `deploy compose --engine synapse` writes: the good baseline every bad variant breaks. */
function good(): Record<string, unknown> {
  return parseSynapseYaml(
    synapseHomeserverYaml({
      serverName: "example.org",
      publicBaseUrl: "https://matrix.example.org/",
      turnUris: ["turn:matrix.example.org:3478?transport=udp"],
      federation: true,
      secrets: {
        postgresPassword: secret("p"),
        redisPassword: secret("r"),
        turnSecret: secret("t"),
        registrationSharedSecret: secret("s"),
        macaroonSecretKey: secret("m"),
        formSecret: secret("f"),
      },
    }),
  ) as Record<string, unknown>;
}

const keys = (raw: unknown) => validateSynapseConfig(raw).map((i) => i.key);
const messageOf = (raw: unknown, key: string) => validateSynapseConfig(raw).find((i) => i.key === key)?.message;

/** Deep copy of `good()` changed by `f`. */
function variant(f: (c: Record<string, any>) => void): Record<string, unknown> {
  const c = good();
  f(c as Record<string, any>);
  return c;
}

test("the generated homeserver.yaml validates and is recognised as Synapse's", () => {
  const c = good();
  assert.deepEqual(validateSynapseConfig(c), []);
  assert.ok(looksLikeSynapse(c));
  assert.ok(!looksLikeSynapse({ matrix: { serverName: "x" } }));
  // The sqlite3 shape is accepted too.
  assert.deepEqual(
    keys(
      variant((c) => {
        c.database = { name: "sqlite3", args: { database: "/data/homeserver.db" } };
      }),
    ),
    [],
  );
});

test("required keys: server_name, listeners, database, report_stats", () => {
  for (const k of ["server_name", "listeners", "database", "report_stats"]) {
    const c = variant((c) => delete c[k]);
    assert.deepEqual(keys(c), [k], k);
    assert.match(messageOf(c, k) ?? "", /required/);
  }
  assert.deepEqual(keys([]), ["(root)"]);
  assert.deepEqual(keys(variant((c) => (c.listeners = []))), ["listeners"]);
});

test("types and listener shapes come back with key paths", () => {
  const c = variant((c) => {
    c.listeners[0].port = "8008";
    c.listeners[0].type = "https";
    c.listeners[0].resources[0].names = ["client", "fedaration"];
    c.listeners[0].x_forwarded = "yes please";
    c.listeners.push({ type: "http", port: 70000, resources: [] }, "metrics");
    c.report_stats = "no";
    c.server_name = "https://example.org";
  });
  const issues = validateSynapseConfig(c);
  const by = Object.fromEntries(issues.map((i) => [i.key, i.message]));
  assert.equal(by["listeners[0].port"], 'expected an integer, got the string "8008"');
  assert.match(by["listeners[0].type"], /expected one of http, manhole, metrics, replication/);
  assert.match(by["listeners[0].resources[0].names[1]"], /unknown resource "fedaration"/);
  assert.match(by["listeners[0].x_forwarded"], /expected true or false/);
  assert.match(by["listeners[1].port"], /at most 65535/);
  assert.match(by["listeners[2]"], /expected a mapping/);
  assert.match(by.report_stats, /expected true or false/);
  assert.match(by.server_name, /host name/);
  assert.equal(issues.length, 8, JSON.stringify(issues));
});

test("YAML 1.1 as Synapse reads it: yes/no are booleans, so report_stats: no is valid", () => {
  const text = YAML.stringify(good()).replace("report_stats: false", "report_stats: no");
  assert.match(text, /report_stats: no/);
  assert.deepEqual(validateSynapseConfig(parseSynapseYaml(text)), []);
});

test("database args: psycopg2 needs dbname, user, host; sqlite3 needs a database path; unknown engines refused", () => {
  assert.deepEqual(keys(variant((c) => delete c.database.args.dbname)), ["database.args.dbname"]);
  assert.deepEqual(
    keys(
      variant((c) => {
        c.database.args.port = "5432";
        c.database.args.cp_min = 20;
        delete c.database.args.user;
      }),
    ).sort(),
    ["database.args.cp_min", "database.args.port", "database.args.user"],
  );
  assert.deepEqual(keys(variant((c) => (c.database = { name: "sqlite3", args: {} }))), ["database.args.database"]);
  assert.deepEqual(keys(variant((c) => (c.database.name = "mysql"))), ["database.name"]);
  assert.deepEqual(keys(variant((c) => delete c.database.args)), ["database.args"]);
});

test("secrets still at placeholder values (or too short) are errors", () => {
  const c = variant((c) => {
    c.registration_shared_secret = "<PRIVATE STRING>";
    c.macaroon_secret_key = "CHANGEME";
    c.form_secret = "short";
    c.database.args.password = "password";
    c.redis.password = "";
    c.turn_shared_secret = "YOUR_SECRET_HERE";
  });
  const by = Object.fromEntries(validateSynapseConfig(c).map((i) => [i.key, i.message]));
  assert.deepEqual(Object.keys(by).sort(), [
    "database.args.password",
    "form_secret",
    "macaroon_secret_key",
    "redis.password",
    "registration_shared_secret",
    "turn_shared_secret",
  ]);
  assert.match(by.registration_shared_secret, /placeholder/);
  assert.match(by.form_secret, /too short/);
});

test("open registration needs a token, a captcha, 3PID verification or an explicit acknowledgement", () => {
  const open = variant((c) => (c.enable_registration = true));
  assert.deepEqual(keys(open), ["enable_registration"]);
  assert.match(messageOf(open, "enable_registration") ?? "", /lets anyone create accounts/);
  for (const guard of [
    { registration_requires_token: true },
    { enable_registration_without_verification: true },
    { registrations_require_3pid: ["email"] },
    { enable_registration_captcha: true, recaptcha_public_key: secret("a"), recaptcha_private_key: secret("b") },
  ]) {
    assert.deepEqual(keys({ ...open, ...guard }), [], JSON.stringify(guard));
  }
  // A captcha without its keys is no guard.
  assert.deepEqual(keys({ ...open, enable_registration_captcha: true }).sort(), [
    "recaptcha_private_key",
    "recaptcha_public_key",
  ]);
});

test("other known keys: durations, sizes, TURN URIs, redis, trusted key servers, tls listeners, worker_app", () => {
  const c = variant((c) => {
    c.turn_user_lifetime = "one hour";
    c.max_upload_size = "lots";
    c.turn_uris = ["stun:x.org"];
    c.redis.port = "6379";
    c.trusted_key_servers = [{ verify_keys: {} }];
    c.listeners[0].tls = true;
    c.worker_app = "synapse.app.generic_worker";
    c.public_baseurl = "matrix.example.org";
  });
  assert.deepEqual(keys(c).sort(), [
    "max_upload_size",
    "public_baseurl",
    "redis.port",
    "tls_certificate_path",
    "trusted_key_servers[0].server_name",
    "turn_uris[0]",
    "turn_user_lifetime",
    "worker_app",
  ]);
});

test("`matrix config validate FILE` recognises a homeserver.yaml: exit 2 and key paths when bad, 0 when good", async () => {
  const { mkdtempSync, writeFileSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const { cli, json } = await import("../test/cli.ts");
  const { matrixConfigValidateOp } = await import("../control/ops/config.ts");
  const dir = mkdtempSync(join(tmpdir(), "ami-synapse-"));
  try {
    const goodFile = join(dir, "homeserver.yaml");
    writeFileSync(goodFile, YAML.stringify(good()));
    const badFile = join(dir, "bad.yaml");
    writeFileSync(
      badFile,
      YAML.stringify(
        variant((c) => {
          c.listeners[0].port = "8008";
          c.macaroon_secret_key = "changeme";
        }),
      ),
    );
    const ctx = { configPath: undefined } as never;
    const ok = await matrixConfigValidateOp.run({ file: goodFile, synapse: false }, ctx);
    assert.deepEqual(ok, { file: goodFile, kind: "synapse", valid: true, issues: [] });
    // --synapse reads a file without the usual keys as Synapse's (and says what is missing).
    const empty = join(dir, "empty.yaml");
    writeFileSync(empty, "public_baseurl: https://m.example.org/\n");
    const forced = await matrixConfigValidateOp.run({ file: empty, synapse: true }, ctx);
    assert.deepEqual(forced.issues.map((i) => i.key).sort(), ["database", "listeners", "report_stats", "server_name"]);
    const r = await cli(["matrix", "config", "validate", badFile]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stdout, /Synapse homeserver\.yaml/);
    assert.match(r.stdout, /listeners\[0\]\.port: expected an integer, got the string "8008"/);
    assert.match(r.stdout, /macaroon_secret_key: still a placeholder value/);
    const j = json(await cli(["matrix", "config", "validate", badFile, "--json"]));
    assert.equal(j.kind, "synapse");
    assert.equal(j.issues.length, 2);
    assert.equal((await cli(["matrix", "config", "validate", goodFile])).code, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
