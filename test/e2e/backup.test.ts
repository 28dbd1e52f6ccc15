/**
 * Backups end to end, on SQLite and on PostgreSQL: a homeserver with rooms, messages, media and devices is backed
 * up while it takes writes (`backup create` op), the backup is verified and restored with the real CLI into a fresh
 * home (PostgreSQL: a fresh database), and a homeserver started there serves the same history (a prefix of the
 * source's, so the snapshot is consistent), media bytes, devices and device keys to matrix-js-sdk and plain clients.
 * Damaged copies (a flipped byte in a store pack, a truncated dump) fail `backup verify` with the file named, and
 * `restore` refuses them and a home that is not empty.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { after, describe, it, test } from "node:test";
import { Direction } from "matrix-js-sdk";
import pg from "pg";
import YAML from "yaml";
import { backupCreate } from "../../src/backup/ops.ts";
import { openStoreAt } from "../../src/cas/open.ts";
import { configSchema } from "../../src/config.ts";
import { makeContext } from "../../src/control/context.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { signingKeyFromSeed, signJson } from "../../src/matrix/events/signing.ts";
import { type RunningHomeserver, startHomeserver } from "../../src/matrix/homeserver.ts";
import { openStore } from "../../src/matrix/store/open.ts";
import { cli, freePort, json, tempHome, until } from "../../src/test/cli.ts";
import { loginUser, ok, registerUser, type Session, sdkClient } from "./helpers/client.ts";
import { BACKENDS, createTestDatabase, type TestDatabase, tempDir, testMatrixConfig } from "./helpers/homeserver.ts";

const enc = encodeURIComponent;
const PASSWORD = "correct horse battery";

interface Home {
  home: string;
  configFile: string;
  config: ReturnType<typeof configSchema.parse>;
  env: NodeJS.ProcessEnv;
}

/** A runtime home with its config.yaml (the matrix database given), and the env that points the CLI at it. */
function makeHome(database: string): Home {
  const home = tempDir("ami-backup-");
  const raw = { home, matrix: testMatrixConfig({ database }), cas: { fsync: false } };
  const configFile = join(home, "config.yaml");
  writeFileSync(configFile, YAML.stringify(raw));
  const env: NodeJS.ProcessEnv = { ...process.env, AMI_STREAMS_HOME: home };
  delete env.AMI_STREAMS_CONFIG;
  return { home, configFile, config: configSchema.parse(raw), env };
}

function start(h: Home): Promise<RunningHomeserver> {
  const dataDir = join(h.home, "data", "matrix");
  return startHomeserver(
    h.config.matrix,
    dataDir,
    silentLogger,
    openStoreAt(join(h.home, "data", "cas"), h.config.cas),
  );
}

function deviceKeys(s: Session) {
  const key = signingKeyFromSeed(`ed25519:${s.deviceId}`, randomBytes(32));
  const dk = {
    user_id: s.userId,
    device_id: s.deviceId,
    algorithms: ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
    keys: {
      [`curve25519:${s.deviceId}`]: randomBytes(32).toString("base64").replace(/=+$/, ""),
      [`ed25519:${s.deviceId}`]: key.publicKeyBase64,
    },
  };
  return signJson(dk, s.userId, key);
}

/** Every timeline event of a room, oldest first, through matrix-js-sdk's /messages. */
async function history(
  base: string,
  s: Session,
  roomId: string,
): Promise<{ id: string; type: string; body?: string }[]> {
  const c = sdkClient(base, s);
  const out: { id: string; type: string; body?: string }[] = [];
  let from: string | null = null;
  for (;;) {
    const r = await c.createMessagesRequest(roomId, from, 100, Direction.Backward);
    for (const e of r.chunk) out.push({ id: e.event_id!, type: e.type!, body: (e.content as { body?: string })?.body });
    if (!r.end || r.chunk.length === 0) break;
    from = r.end;
  }
  c.stopClient();
  return out.reverse();
}

/** The one pack file holding most of the store's bytes (the uploaded media's chunks). */
function biggestPack(casDir: string): string {
  const packs = readdirSync(join(casDir, "packs")).map((f) => join(casDir, "packs", f));
  return packs.sort((a, b) => statSync(b).size - statSync(a).size)[0];
}

for (const backend of BACKENDS) {
  describe(`backup and restore on ${backend}`, { timeout: 120_000 }, () => {
    const cleanups: (() => Promise<void> | void)[] = [];
    after(async () => {
      for (const c of cleanups.reverse()) await c();
    });

    it("a backup made under writes restores into a fresh home: same history, media, devices and keys", async () => {
      // Source: SQLite in its default place (<home>/data/matrix/homeserver.db) or a fresh PostgreSQL database.
      let dbA: TestDatabase | undefined;
      if (backend === "postgres") {
        dbA = await createTestDatabase("postgres", "");
        cleanups.push(() => dbA!.drop());
      }
      const a = makeHome(dbA?.database ?? "sqlite");
      cleanups.push(() => rmSync(a.home, { recursive: true, force: true }));
      const hsA = await start(a);
      cleanups.push(() => hsA.close());
      const url = hsA.url;

      const alice = await registerUser(url, "alice", PASSWORD);
      const bob = await registerUser(url, "bob", PASSWORD);
      const alice2 = await loginUser(url, "alice", PASSWORD);
      await ok(url, "PUT", `/_matrix/client/v3/devices/${enc(alice2.deviceId)}`, {
        token: alice2.accessToken,
        body: { display_name: "alice's laptop" },
      });
      await ok(url, "POST", "/_matrix/client/v3/keys/upload", {
        token: alice.accessToken,
        body: { device_keys: deviceKeys(alice) },
      });
      const roomId = (
        await ok(url, "POST", "/_matrix/client/v3/createRoom", {
          token: alice.accessToken,
          body: { name: "backed up", invite: [bob.userId] },
        })
      ).room_id as string;
      await ok(url, "POST", `/_matrix/client/v3/join/${enc(roomId)}`, { token: bob.accessToken, body: {} });
      const media = randomBytes(300 * 1024); // several chunks
      const up = await ok(url, "POST", "/_matrix/media/v3/upload?filename=photo.bin", {
        token: alice.accessToken,
        body: media,
        headers: { "Content-Type": "application/octet-stream" },
      });
      const mxc = up.content_uri as string;
      await ok(url, "PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/img`, {
        token: alice.accessToken,
        body: { msgtype: "m.file", body: "photo.bin", url: mxc },
      });
      for (let i = 0; i < 30; i++) {
        const who = i % 2 ? bob : alice;
        await ok(url, "PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/t${i}`, {
          token: who.accessToken,
          body: { msgtype: "m.text", body: `before ${i}` },
        });
      }

      // The backup runs while messages keep arriving.
      let writing = true;
      let sent = 0;
      const writer = (async () => {
        while (writing) {
          await ok(url, "PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/w${sent}`, {
            token: bob.accessToken,
            body: { msgtype: "m.text", body: `during ${sent}` },
          });
          sent++;
        }
      })();
      // Its own home, whatever AMI_STREAMS_HOME the test runner set.
      const ctx = makeContext({ config: a.config, configPath: a.configFile, log: silentLogger, home: a.home });
      const made = await backupCreate.run({ prune: false, tar: backend === "postgres" }, ctx);
      writing = false;
      await writer;
      assert.equal(made.database, backend);
      assert.ok(made.casObjects >= 1, "the uploaded media's object is in the backup");
      assert.ok(made.path.startsWith(join(a.home, "backups")), made.path);
      assert.equal(made.path.endsWith(".tar"), backend === "postgres");

      const before = await history(url, alice, roomId);
      const devicesA = (await ok(url, "GET", "/_matrix/client/v3/devices", { token: alice.accessToken })).devices;
      const keysA = await ok(url, "POST", "/_matrix/client/v3/keys/query", {
        token: bob.accessToken,
        body: { device_keys: { [alice.userId]: [] } },
      });
      await hsA.close();
      cleanups.pop();

      // Verify with the CLI.
      const v = await cli(["backup", "verify", made.path, "--json"], { env: a.env });
      assert.equal(v.code, 0, v.stderr);
      assert.equal(JSON.parse(v.stdout).ok, true);

      // Restore with the CLI into a fresh home (PostgreSQL: a fresh database).
      let dbB: TestDatabase | undefined;
      if (backend === "postgres") {
        dbB = await createTestDatabase("postgres", "");
        cleanups.push(() => dbB!.drop());
      }
      const b = makeHome(dbB?.database ?? "sqlite");
      cleanups.push(() => rmSync(b.home, { recursive: true, force: true }));
      const r = await cli(["backup", "restore", made.path, "--json"], { env: b.env });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout).keys.sort(), ["matrix/registration_shared_secret", "matrix/signing.key"]);
      assert.deepEqual(
        readFileSync(join(b.home, "data", "matrix", "signing.key")),
        readFileSync(join(a.home, "data", "matrix", "signing.key")),
      );

      // A second restore into the same (now full) home is refused.
      const again = await cli(["backup", "restore", made.path], { env: b.env });
      assert.notEqual(again.code, 0);
      assert.match(again.stderr, /not empty/);

      const hsB = await start(b);
      cleanups.push(() => hsB.close());
      // The old access token still works; so does the password.
      assert.equal(
        (await ok(hsB.url, "GET", "/_matrix/client/v3/account/whoami", { token: alice.accessToken })).user_id,
        alice.userId,
      );
      const relogin = await loginUser(hsB.url, "bob", PASSWORD);
      assert.equal(relogin.userId, bob.userId);

      const after = await history(hsB.url, alice, roomId);
      assert.ok(
        after.length >= before.length - sent,
        `restored ${after.length} events, ${before.length - sent}+ expected`,
      );
      assert.deepEqual(after, before.slice(0, after.length), "the restored history is a prefix of the source's");
      assert.ok(after.some((e) => e.body === "before 29") && after.some((e) => e.body === "photo.bin"));

      const mediaId = mxc.replace("mxc://localhost/", "");
      const dl = await fetch(`${hsB.url}/_matrix/client/v1/media/download/localhost/${mediaId}`, {
        headers: { Authorization: `Bearer ${bob.accessToken}` },
      });
      assert.equal(dl.status, 200);
      assert.deepEqual(Buffer.from(await dl.arrayBuffer()), media);

      const sdk = sdkClient(hsB.url, alice);
      const devicesB = (await sdk.getDevices()).devices;
      type Dev = { device_id: string; display_name?: string };
      const byId = (d: Dev[]) =>
        [...d].sort((x, y) => x.device_id.localeCompare(y.device_id)).map((x) => [x.device_id, x.display_name]);
      assert.deepEqual(byId(devicesB), byId(devicesA));
      assert.ok(devicesB.some((d) => d.display_name === "alice's laptop"));
      const keysB = await ok(hsB.url, "POST", "/_matrix/client/v3/keys/query", {
        token: bob.accessToken,
        body: { device_keys: { [alice.userId]: [] } },
      });
      assert.deepEqual(keysB.device_keys, keysA.device_keys);
      assert.ok(keysB.device_keys[alice.userId][alice.deviceId], "alice's device keys restored");
      sdk.stopClient();
      await hsB.close();
      cleanups.pop();

      // Damaged copies fail verify, naming what is wrong, and are refused by restore.
      let dir = made.path;
      if (dir.endsWith(".tar")) {
        dir = join(a.home, "unpacked");
        mkdirSync(dir);
        execFileSync("tar", ["-xf", made.path, "-C", dir]);
      }
      const flipped = join(a.home, "flipped");
      cpSync(dir, flipped, { recursive: true });
      const pack = biggestPack(join(flipped, "cas"));
      const bytes = readFileSync(pack);
      bytes[Math.floor(bytes.length / 2)] ^= 0x01;
      writeFileSync(pack, bytes);
      const bad = await cli(["backup", "verify", flipped], { env: a.env });
      assert.equal(bad.code, 1, bad.stderr);
      assert.match(bad.stderr, /damaged/);
      assert.match(bad.stderr, /cas\/packs\/.*SHA-256 .* does not match/);
      assert.match(bad.stderr, /chunk [0-9a-f]{64} does not match its hash/);

      const truncated = join(a.home, "truncated");
      cpSync(dir, truncated, { recursive: true });
      const dump = join(truncated, "db", backend === "sqlite" ? "homeserver.sqlite" : "homeserver.pgdump");
      truncateSync(dump, Math.floor(statSync(dump).size / 2));
      const bad2 = await cli(["backup", "verify", truncated, "--json"], { env: a.env });
      assert.equal(bad2.code, 1);
      const problems: string[] = JSON.parse(bad2.stdout).error.problems ?? [];
      const text = bad2.stderr + JSON.stringify(problems);
      assert.match(text, /db\/homeserver\.(sqlite|pgdump): \d+ bytes, the manifest says \d+/);
      assert.match(
        text,
        backend === "sqlite"
          ? /SQLite copy is not readable|cannot open the SQLite copy/
          : /pg_restore cannot read the dump/,
      );

      const c = makeHome(backend === "postgres" ? (dbB?.database ?? "") : "sqlite");
      cleanups.push(() => rmSync(c.home, { recursive: true, force: true }));
      const refused = await cli(["backup", "restore", truncated], { env: c.env });
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /damaged/);

      if (backend === "postgres") {
        // --database names another database and schema than the backup's: restored, then renamed.
        const dbC = await createTestDatabase("postgres", "");
        cleanups.push(() => dbC.drop());
        const renamed = await cli(
          ["backup", "restore", made.path, "--database", `${dbC.database}?schema=moved`, "--json"],
          {
            env: c.env,
          },
        );
        assert.equal(renamed.code, 0, renamed.stderr);
        const pgc = new pg.Client({ connectionString: dbC.database });
        await pgc.connect();
        try {
          const n = (await pgc.query("SELECT count(*)::int AS n FROM moved.events")).rows[0].n;
          assert.equal(n, JSON.parse(renamed.stdout).events);
          const schemas = (await pgc.query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'ami_%'")).rows;
          assert.deepEqual(schemas, [], "nothing left under the backup's schema name");
        } finally {
          await pgc.end();
        }
      }
    });
  });
}

test("`up` with backup.schedule runs the backup service under the supervisor: a backup of the home at start", {
  timeout: 90_000,
}, async () => {
  const port = await freePort();
  const h = tempHome({
    matrix: { enabled: false },
    media: { enabled: false },
    web: { enabled: false },
    control: { port: 0, healthIntervalMs: 200 },
    cas: { fsync: false },
    backup: { schedule: "1d", keep: 3, port },
  });
  try {
    // A homeserver database (schema only) is what the scheduled backup finds there.
    const s = await openStore("sqlite", join(h.home, "data", "matrix"));
    await s.close();
    const up = await cli(["up"], { env: h.env });
    assert.equal(up.code, 0, up.stderr);
    const st = await cli(["backup", "status", "--json"], { env: h.env });
    assert.equal(st.code, 0, st.stderr);
    const list = await until("a scheduled backup", async () => {
      const r = json(await cli(["backup", "list", "--json"], { env: h.env }));
      return r.backups.length > 0 ? r : undefined;
    });
    const stats = await (await fetch(`http://127.0.0.1:${port}/_ami/stats`)).json();
    assert.equal(stats.backups_total, 1);
    const v = await cli(["backup", "verify", list.backups[0].path, "--json"], { env: h.env });
    assert.equal(v.code, 0, v.stderr);
    // The service got the config file's path: the config is in the backup.
    assert.ok(existsSync(join(list.backups[0].path, "config", "config.yaml")));
  } finally {
    await h.cleanup();
  }
});
