/**
 * Backups without a running server: retention and the schedule's due rule, a scheduled tick making a real backup of
 * a real SQLite homeserver database and pruning past `keep`, the service's figures, `.tar` backups, and a damaged
 * manifest or an unlisted file failing verify.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import YAML from "yaml";
import { openStoreAt } from "../cas/open.ts";
import { configSchema } from "../config.ts";
import { silentLogger } from "../core/logger.ts";
import { runtimePaths } from "../core/paths.ts";
import { openStore } from "../matrix/store/open.ts";
import { scheduleMs } from "./config.ts";
import { backupName, createBackup } from "./create.ts";
import { restoreDir } from "./restore.ts";
import { dueIn, listBackups, prune } from "./schedule.ts";
import { backupService, newSchedulerState, tick } from "./service.ts";
import { openBackup } from "./tar.ts";
import { verifyDir } from "./verify.ts";

function home(extra: Record<string, unknown> = {}) {
  const dir = mkdtempSync(join(tmpdir(), "ami-backup-unit-"));
  const config = configSchema.parse({ home: dir, cas: { fsync: false }, ...extra });
  return { dir, config, paths: runtimePaths(dir), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A homeserver database with its schema (no server needed) and one stored object. */
async function seed(h: ReturnType<typeof home>): Promise<void> {
  const s = await openStore("sqlite", join(h.dir, "data", "matrix"));
  await s.close();
  await openStoreAt(join(h.dir, "data", "cas"), h.config.cas).put(Buffer.from("hello store"), { hold: "pin" });
  writeFileSync(join(h.dir, "data", "matrix", "signing.key"), "ed25519 a_test AAAA\n");
}

test("schedule intervals and generated names", () => {
  assert.equal(scheduleMs("30m"), 1_800_000);
  assert.equal(scheduleMs("6h"), 21_600_000);
  assert.equal(scheduleMs("1d"), 86_400_000);
  assert.ok(!configSchema.safeParse({ backup: { schedule: "daily" } }).success);
  const bad = configSchema.safeParse({ backup: { schedule: "0h" } });
  assert.ok(!bad.success && bad.error.issues[0].path.join(".") === "backup.schedule");
  assert.equal(backupName(new Date(Date.UTC(2026, 11, 7, 3, 4, 5, 6))), "ami-backup-20261207T030405006Z");
});

test("retention keeps the newest, never touches a backup an operator named; due follows the newest", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ami-backup-ret-"));
  try {
    const t0 = Date.UTC(2026, 0, 1);
    for (let i = 0; i < 5; i++) mkdirSync(join(dir, backupName(new Date(t0 + i * 3_600_000))));
    writeFileSync(join(dir, `${backupName(new Date(t0 + 5 * 3_600_000))}.tar`), "");
    mkdirSync(join(dir, "before-upgrade"));
    assert.equal(listBackups(dir).length, 6);
    assert.equal(listBackups(dir)[0].tar, true, "newest first");
    assert.equal(dueIn(dir, 3_600_000, t0 + 5 * 3_600_000 + 1000), 3_599_000);
    assert.ok(dueIn(dir, 3_600_000, t0 + 7 * 3_600_000) < 0);
    assert.equal(dueIn(join(dir, "none"), 3_600_000), 0, "no backup yet: due now");
    const removed = await prune(dir, 2);
    assert.equal(removed.length, 4);
    assert.deepEqual(
      listBackups(dir).map((b) => b.createdTs),
      [t0 + 5 * 3_600_000, t0 + 4 * 3_600_000],
    );
    assert.ok(listBackups(dir).length === 2 && (await prune(dir, 0)).length === 0, "keep 0 keeps all");
    assert.ok(existsSync(join(dir, "before-upgrade")));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a scheduled tick backs up a real SQLite home when due, then not until the interval passed; keep prunes", async () => {
  const h = home({ backup: { schedule: "1h", keep: 2 } });
  try {
    await seed(h);
    const state = newSchedulerState();
    assert.equal(await tick(h.config, undefined, h.paths, silentLogger, state), "made");
    assert.equal(await tick(h.config, undefined, h.paths, silentLogger, state), "not-due");
    const dir = join(h.dir, "backups");
    const [b] = listBackups(dir);
    const { result } = await verifyDir(b.path);
    assert.equal(result.ok, true, result.problems.join("\n"));
    assert.equal(result.casObjects, 1);
    // Two hours later: due again, three times; keep: 2.
    for (let i = 1; i <= 3; i++)
      assert.equal(await tick(h.config, undefined, h.paths, silentLogger, state, Date.now() + i * 7_200_000), "made");
    assert.equal(listBackups(dir).length, 2);
    assert.equal(state.backups, 4);
    assert.equal(state.failures, 0);
    // A failing backup (the database is gone) is counted, not thrown.
    rmSync(join(h.dir, "data", "matrix", "homeserver.db"));
    assert.equal(await tick(h.config, undefined, h.paths, silentLogger, state, Date.now() + 10 * 7_200_000), "failed");
    assert.equal(state.failures, 1);
    assert.match(state.lastError ?? "", /no SQLite database/);
    assert.equal(listBackups(dir).length, 2, "a failed backup leaves nothing behind");
  } finally {
    h.cleanup();
  }
});

test("the backup service answers health and its figures, and makes the first backup at start", async () => {
  const h = home({ backup: { schedule: "1d", port: 0 } });
  try {
    await seed(h);
    assert.equal(backupService.enabled(h.config), true);
    assert.equal(backupService.enabled(configSchema.parse({})), false, "no schedule: not started by up");
    const s = await backupService.start(h.config, { paths: h.paths, log: silentLogger });
    try {
      assert.equal((await fetch(`${s.url}/health`)).status, 200);
      let stats: Record<string, number> = {};
      for (let i = 0; i < 200 && !stats.backups_total; i++) {
        stats = await (await fetch(`${s.url}/_ami/stats`)).json();
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(stats.backups_total, 1);
      assert.equal(stats.last_failed, 0);
      assert.match(await (await fetch(`${s.url}/metrics`)).text(), /^ami_backup_total 1$/m);
    } finally {
      await s.close();
    }
  } finally {
    h.cleanup();
  }
});

test(".tar backups verify and restore; a bad manifest or an unlisted file fails verify", async () => {
  const h = home();
  const target = home();
  try {
    await seed(h);
    mkdirSync(join(h.dir, "data", "media", "recordings", ".cas", "live"), { recursive: true });
    writeFileSync(join(h.dir, "data", "media", "recordings", ".cas", "live", "demo.json"), '{"1-0.mp4":"ab"}');
    writeFileSync(join(h.dir, "data", "media", "keys.json"), "{}");
    const configFile = join(h.dir, "config.yaml");
    writeFileSync(
      configFile,
      `# the operator's notes\nhome: ${h.dir}\ncas:\n  fsync: false\n  root: ${join(h.dir, "data", "cas")}\n`,
    );
    const r = await createBackup({
      config: h.config,
      configPath: configFile,
      paths: h.paths,
      log: silentLogger,
      tar: true,
    });
    assert.ok(r.path.endsWith(".tar"));
    const b = await openBackup(r.path);
    try {
      assert.equal((await verifyDir(b.dir)).result.ok, true);
      const out = await restoreDir(b.dir, { config: target.config, configPath: undefined, paths: target.paths });
      assert.equal(out.casObjects, 1);
      assert.deepEqual(out.keys, ["matrix/signing.key", "media/keys.json"]);
      assert.equal(readFileSync(join(target.dir, "data", "media", "keys.json"), "utf8"), "{}");
      assert.equal(
        readFileSync(join(target.dir, "data", "media", "recordings", ".cas", "live", "demo.json"), "utf8"),
        '{"1-0.mp4":"ab"}',
      );
      // The home had no config: the backup's is written there, pointed at this home, comments kept.
      assert.equal(out.config, join(target.dir, "config.yaml"));
      const restoredConfig = readFileSync(out.config, "utf8");
      assert.match(restoredConfig, /# the operator's notes/);
      assert.deepEqual(YAML.parse(restoredConfig), { home: target.dir, cas: { fsync: false, root: null } });
      const chunks: Buffer[] = [];
      const cas = openStoreAt(join(target.dir, "data", "cas"));
      const [o] = await cas.list();
      for await (const c of cas.get(o.id)) chunks.push(c);
      assert.equal(Buffer.concat(chunks).toString(), "hello store");
      assert.deepEqual(o.holds, ["pin"]);
      // Again into the same home: refused, naming what is there; with force, done (the config now kept).
      await assert.rejects(
        restoreDir(b.dir, { config: target.config, configPath: undefined, paths: target.paths }),
        (e: Error & { code?: string }) =>
          e.code === "AMI_BACKUP_TARGET_NOT_EMPTY" &&
          /homeserver\.db/.test(e.message) &&
          /signing\.key/.test(e.message),
      );
      const forced = await restoreDir(b.dir, {
        config: target.config,
        configPath: undefined,
        paths: target.paths,
        force: true,
      });
      assert.match(forced.config, /^kept the config in effect/);
      writeFileSync(join(b.dir, "extra.txt"), "x");
      assert.deepEqual((await verifyDir(b.dir)).result.problems, ["extra.txt: not in the manifest"]);
      writeFileSync(join(b.dir, "manifest.json"), "{");
      await assert.rejects(verifyDir(b.dir), /manifest\.json is not valid JSON/);
    } finally {
      await b.cleanup();
    }
    await assert.rejects(verifyDir(join(h.dir, "nothing")), /no manifest\.json/);
  } finally {
    h.cleanup();
    target.cleanup();
  }
});

test("create's and verify's SQLite checks run off the main thread: the event loop turns while they read", async () => {
  // A synchronous PRAGMA check blocked the backup service's event loop for 10+ s at 1 M events: /health went
  // unanswered and the supervisor killed the service mid-backup, every time. The progress calls bracket the check;
  // on the main thread no turn of the loop can fall between them.
  const h = home();
  try {
    await seed(h);
    let turns = 0;
    let spinning = true;
    const spin = () => {
      turns++;
      if (spinning) setImmediate(spin);
    };
    spin();
    const during: Record<string, number> = {};
    const bracket = (what: string) => (done: number, _total: number | undefined, message?: string) => {
      if (message !== "checking") return;
      if (done === 0) during[what] = -turns;
      else during[what] += turns;
    };
    try {
      const r = await createBackup({
        config: h.config,
        configPath: undefined,
        paths: h.paths,
        log: silentLogger,
        dir: join(h.dir, "backups"),
        progress: bracket("create"),
      });
      const { result } = await verifyDir(r.path, bracket("verify"));
      assert.equal(result.ok, true, result.problems.join("\n"));
      assert.ok(during.create > 0, `no turn of the event loop during create's check (${during.create})`);
      assert.ok(during.verify > 0, `no turn of the event loop during verify's check (${during.verify})`);
      // A damaged copy still fails the check, its words carried back from the worker thread.
      writeFileSync(join(r.path, "db", "homeserver.sqlite"), "not a database");
      const bad = (await verifyDir(r.path)).result.problems;
      assert.ok(
        bad.some((p) => /^db\/homeserver\.sqlite: SQLite copy is not readable: .*not a database/.test(p)),
        bad.join("\n"),
      );
    } finally {
      spinning = false;
    }
  } finally {
    h.cleanup();
  }
});

test("create removes the .partial directory of a create that was killed, not one whose process still runs", async () => {
  const h = home();
  try {
    await seed(h);
    const dir = join(h.dir, "backups");
    const partial = (name: string, pid: number) => {
      mkdirSync(join(dir, `.${name}.partial`, "db"), { recursive: true });
      writeFileSync(join(dir, `.${name}.partial`, "db", "homeserver.sqlite"), "half a copy");
      writeFileSync(join(dir, `.${name}.partial.pid`), `${pid}\n`);
    };
    const gone = spawnSync(process.execPath, ["-e", ""]).pid;
    partial("ami-backup-20260101T000000000Z", gone);
    partial("ami-backup-20260101T010000000Z", process.pid);
    mkdirSync(join(dir, ".before-pid-files.partial"));
    const r = await createBackup({ config: h.config, configPath: undefined, paths: h.paths, log: silentLogger, dir });
    assert.deepEqual(readdirSync(dir).sort(), [
      ".ami-backup-20260101T010000000Z.partial",
      ".ami-backup-20260101T010000000Z.partial.pid",
      ".before-pid-files.partial",
      r.name,
    ]);
  } finally {
    h.cleanup();
  }
});
