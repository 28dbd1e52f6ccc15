/**
 * `deploy compose` for real, as far as these machines go (no Docker engine): the generated config runs our
 * homeserver under `supervise --all` (the image's entry point) on PostgreSQL, the generated Caddyfile runs in a real
 * Caddy in front of it (only its addresses changed: plain HTTP on a free port, upstreams on loopback), and the
 * README's first-user command works. Then SIGTERM stops the whole thing cleanly.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { after, test } from "node:test";
import YAML from "yaml";
import { cli, freePort, json, repoRoot, until } from "../../src/test/cli.ts";
import { createTestDatabase, type TestDatabase, tempDir } from "./helpers/homeserver.ts";

const hasCaddy = !spawnSync("caddy", ["version"]).error;

const base = tempDir("ami-deploy-e2e-");
const dir = join(base, "stack");
const children: ChildProcess[] = [];
let db: TestDatabase | undefined;
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await db?.drop();
  rmSync(base, { recursive: true, force: true });
});

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * An HTTP request to Caddy with a chosen Host (the generated sites are matched by name); `from`: another local
 * address to connect from, and more headers.
 */
function get(
  port: number,
  host: string,
  path: string,
  method = "GET",
  body?: string,
  from?: { localAddress?: string; headers?: Record<string, string> },
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path,
        method,
        localAddress: from?.localAddress,
        headers: { host, ...(body ? { "content-type": "application/json" } : {}), ...from?.headers },
      },
      (res) => {
        let b = "";
        res.on("data", (d) => (b += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: b }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

test("the generated stack: supervise --all on PostgreSQL, the Caddyfile in a real Caddy, the README's first user", {
  skip: !hasCaddy && "caddy is not installed (Debian: caddy)",
}, async () => {
  // 1. Generate (the CLI, as an operator runs it).
  const gen = json(await cli(["deploy", "compose", dir, "--domain", "example.org", "--json"]));
  assert.equal(gen.engine, "ami");
  assert.ok(gen.files.includes("ami/config.yaml"));

  // 2. The generated config with the Compose network's names swapped for this machine's.
  db = await createTestDatabase("postgres", dir);
  const hsPort = await freePort();
  const config = YAML.parse(readFileSync(join(dir, "ami/config.yaml"), "utf8"));
  assert.match(config.matrix.database, /@postgres:5432\/ami_streams$/);
  config.matrix.database = db.database;
  config.matrix.host = "127.0.0.1";
  config.matrix.port = hsPort;
  config.control = { port: 0 };
  // Caddy runs on this machine's loopback, not on the stack's network.
  assert.deepEqual(config.matrix.trustedProxies, ["172.29.13.0/24"]);
  config.matrix.trustedProxies = ["127.0.0.1"];
  const configFile = join(dir, "local-config.yaml");
  writeFileSync(configFile, YAML.stringify(config), { mode: 0o600 });
  const env = { ...process.env, AMI_STREAMS_CONFIG: configFile, AMI_STREAMS_HOME: join(dir, "ami/data") };

  // 3. The image's entry point: `supervise --all` starts every enabled service (here: matrix only).
  const sup = spawn(join(repoRoot, "bin/ami-streams"), ["supervise", "--all"], { env, stdio: "ignore" });
  children.push(sup);
  await until(
    "the homeserver's /health",
    async () => (await get(hsPort, "localhost", "/health").catch(() => ({ status: 0 }))).status === 200,
    60_000,
  );

  // 4. The generated Caddyfile, addresses only: http on a free port, upstreams on loopback, files from the project.
  const caddyPort = await freePort();
  let caddyfile = readFileSync(join(dir, "caddy/Caddyfile"), "utf8");
  const swaps: [string | RegExp, string][] = [
    [/^(example\.org|matrix\.example\.org|element\.example\.org) \{$/gm, `http://$1:${caddyPort} {`],
    ["root * /srv", `root * ${join(dir, "caddy/srv")}`],
    ["reverse_proxy ami-streams:8008", `reverse_proxy 127.0.0.1:${hsPort}`],
  ];
  for (const [from, to] of swaps) {
    const next = caddyfile.replaceAll(from as string, to);
    assert.notEqual(next, caddyfile, `the Caddyfile has ${from}`);
    caddyfile = next;
  }
  const local = join(dir, "Caddyfile.local");
  writeFileSync(local, `{\n\tadmin off\n\tauto_https off\n}\n${caddyfile}`);
  const caddy = spawn("caddy", ["run", "--config", local, "--adapter", "caddyfile"], {
    env: { ...process.env, XDG_DATA_HOME: join(dir, "xdg-data"), XDG_CONFIG_HOME: join(dir, "xdg-config") },
    stdio: "ignore",
  });
  children.push(caddy);
  await until("caddy", async () => (await get(caddyPort, "example.org", "/").catch(() => ({ status: 0 }))).status > 0);

  // The well-known answers, on the server name and on the homeserver's host, as JSON for browsers too.
  for (const host of ["example.org", "matrix.example.org"]) {
    const s = await get(caddyPort, host, "/.well-known/matrix/server");
    assert.equal(s.status, 200, host);
    assert.deepEqual(JSON.parse(s.body), { "m.server": "matrix.example.org:443" });
    assert.match(String(s.headers["content-type"]), /^application\/json/);
    assert.equal(s.headers["access-control-allow-origin"], "*");
    const c = await get(caddyPort, host, "/.well-known/matrix/client");
    assert.equal(JSON.parse(c.body)["m.homeserver"].base_url, "https://matrix.example.org");
  }
  // The server name's other paths go to Element; the homeserver's host exposes the Matrix APIs only.
  const apex = await get(caddyPort, "example.org", "/room/abc");
  assert.equal(apex.status, 302);
  assert.equal(apex.headers.location, "https://element.example.org/room/abc");
  const versions = await get(caddyPort, "matrix.example.org", "/_matrix/client/versions");
  assert.equal(versions.status, 200);
  assert.ok(JSON.parse(versions.body).versions.length > 0);
  assert.equal((await get(caddyPort, "matrix.example.org", "/_synapse/admin/v1/server_version")).status, 404);
  assert.equal((await get(caddyPort, "matrix.example.org", "/health")).status, 404);
  // Registration is closed.
  const reg = await get(caddyPort, "matrix.example.org", "/_matrix/client/v3/register", "POST", "{}");
  assert.equal(reg.status, 403, reg.body);

  // 5. The README's first user (shared-secret registration), then a password login through Caddy.
  const made = await cli(["matrix", "user", "create", "alice", "--password", "correct horse", "--admin"], { env });
  assert.equal(made.code, 0, made.stderr);
  assert.match(made.stdout, /@alice:example\.org/);
  const loginBody = JSON.stringify({
    type: "m.login.password",
    identifier: { type: "m.id.user", user: "alice" },
    password: "correct horse",
  });
  const login = await get(caddyPort, "matrix.example.org", "/_matrix/client/v3/login", "POST", loginBody);
  assert.equal(login.status, 200, login.body);
  assert.equal(JSON.parse(login.body).user_id, "@alice:example.org");

  // The client's address behind Caddy: a login from 127.0.0.2 through Caddy, claiming another address in its own
  // X-Forwarded-For, is seen from 127.0.0.2 (Caddy replaces the header; the homeserver trusts Caddy's address);
  // one straight to the homeserver from 127.0.0.3 claiming the same is seen from 127.0.0.3 (not a trusted proxy).
  const spoof = { "x-forwarded-for": "6.6.6.6" };
  const viaCaddy = await get(caddyPort, "matrix.example.org", "/_matrix/client/v3/login", "POST", loginBody, {
    localAddress: "127.0.0.2",
    headers: spoof,
  });
  const direct = await get(hsPort, "matrix.example.org", "/_matrix/client/v3/login", "POST", loginBody, {
    localAddress: "127.0.0.3",
    headers: spoof,
  });
  assert.equal(viaCaddy.status, 200, viaCaddy.body);
  assert.equal(direct.status, 200, direct.body);
  const token = JSON.parse(login.body).access_token;
  const devices = await get(hsPort, "localhost", "/_matrix/client/v3/devices", "GET", undefined, {
    headers: { authorization: `Bearer ${token}` },
  });
  const ipOf = (r: Reply) =>
    JSON.parse(devices.body).devices.find((d: any) => d.device_id === JSON.parse(r.body).device_id)?.last_seen_ip;
  assert.equal(ipOf(viaCaddy), "127.0.0.2", "behind Caddy: the client's own address, not what it claimed");
  assert.equal(ipOf(direct), "127.0.0.3", "straight to the homeserver: the header is ignored");

  // 6. SIGTERM (what `docker compose stop` and systemd send): services stopped, the supervisor exits 0.
  const exited = new Promise<number | null>((r) => sup.once("exit", (code) => r(code)));
  sup.kill("SIGTERM");
  assert.equal(await exited, 0);
  assert.equal((await get(hsPort, "localhost", "/health").catch(() => ({ status: 0 }))).status, 0);
  caddy.kill("SIGTERM");
});
