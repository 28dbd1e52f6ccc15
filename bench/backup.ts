/**
 * Backup and restore time per event count, on SQLite and on PostgreSQL: a homeserver database holding
 * BENCH_BACKUP_EVENTS messages (default 100,000; written straight into the store as the search bench does, see
 * fill), `backup create`d and `backup restore`d into a fresh home (PostgreSQL: a fresh database); with another count
 * than 1,000,000 the per-1 M figures are also extrapolated linearly from it (said so in the row); baselines, same run and data: `sqlite3 .backup` /
 * `pg_dump -Fc` alone, `cp` of the database file / `pg_restore` alone into a fresh database. The store's share is
 * measured apart (runStore): BENCH_BACKUP_MEDIA_MIB of media (default 64 MiB, 1 MiB objects) against `cp -r`.
 * `node bench/backup.ts` (or `npm run bench backup`); BENCH_BACKUP_ONLY picks parts.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import YAML from "yaml";
import { copyCas } from "../src/backup/cas-copy.ts";
import { createBackup } from "../src/backup/create.ts";
import { hashFile, listFiles } from "../src/backup/files.ts";
import { restoreDir } from "../src/backup/restore.ts";
import { openStoreAt } from "../src/cas/open.ts";
import { configSchema } from "../src/config.ts";
import { silentLogger } from "../src/core/logger.ts";
import { runtimePaths } from "../src/core/paths.ts";
import { startHomeserver } from "../src/matrix/homeserver.ts";
import { openStore } from "../src/matrix/store/open.ts";
import type { NewEvent } from "../src/matrix/store/types.ts";
import { ok, registerUser } from "../test/e2e/helpers/client.ts";
import {
  type Backend,
  createTestDatabase,
  type TestDatabase,
  testMatrixConfig,
} from "../test/e2e/helpers/homeserver.ts";
import { type BenchResult, benchMessage, round, runIfMain, untargetedRows } from "./matrix/lib.ts";

const EVENTS = Number(process.env.BENCH_BACKUP_EVENTS ?? 100_000);
const MEDIA_MIB = Number(process.env.BENCH_BACKUP_MEDIA_MIB ?? 64);

function home(database: string) {
  const dir = mkdtempSync(join(tmpdir(), "ami-bench-backup-"));
  const raw = { home: dir, matrix: testMatrixConfig({ database }) };
  writeFileSync(join(dir, "config.yaml"), YAML.stringify(raw));
  return { dir, config: configSchema.parse(raw), paths: runtimePaths(dir), configFile: join(dir, "config.yaml") };
}

const BATCH = 1000;
const [BODY_HEAD, BODY_TAIL] = ["message ", " of the backup bench, with a few words to weigh like chat"];
const body = (i: number) => `${BODY_HEAD}${i}${BODY_TAIL}`;

/** Bench message `i` at stream position `stream`, as the store is given it. */
const message = (i: number, stream: number, roomId: string, sender: string): NewEvent =>
  benchMessage(i, stream, roomId, sender, body(i));

/**
 * EVENTS messages in one room. SQLite: every one through the store, BATCH to a transaction. PostgreSQL: the store
 * writes one event per round trip (a few hundred a second on a loaded machine: 1 M took over an hour, printing
 * nothing, which looked like a stall), so only the first BATCH go through the store and the rest are generated in
 * the server from them (pgBulk), after checking they are the rows the store writes.
 */
async function fill(h: ReturnType<typeof home>, backend: Backend): Promise<void> {
  const dataDir = join(h.dir, "data", "matrix");
  const hs = await startHomeserver(h.config.matrix, dataDir, silentLogger, openStoreAt(join(h.dir, "data", "cas")));
  const user = await registerUser(hs.url, "bench");
  const roomId = (await ok(hs.url, "POST", "/_matrix/client/v3/createRoom", { token: user.accessToken, body: {} }))
    .room_id as string;
  await hs.close();
  const store = await openStore(h.config.matrix.database, dataDir);
  const pgc = backend === "postgres" ? await pgSchemaClient(h.config.matrix.database) : undefined;
  try {
    const first = (await store.getMaxStream()) + 1;
    const viaStore = backend === "postgres" ? Math.min(EVENTS, BATCH) : EVENTS;
    const before = pgc && (await rowCounts(pgc));
    const t = performance.now();
    for (let at = 0; at < viaStore; at += BATCH) {
      const batch: NewEvent[] = [];
      for (let i = at; i < Math.min(viaStore, at + BATCH); i++) batch.push(message(i, first + i, roomId, user.userId));
      await store.events.persistEvents(batch);
      if ((at + BATCH) % 100_000 === 0)
        console.error(`[backup] ${backend}: ${at + BATCH} events in ${round((performance.now() - t) / 1000, 1)} s`);
    }
    if (pgc && before && EVENTS > viaStore) {
      await checkTemplate(pgc, before, viaStore, first, roomId, user.userId);
      await pgBulk(pgc, viaStore, first, roomId, user.userId, t);
    }
  } finally {
    await store.close();
    await pgc?.end();
  }
}

/** A client on the homeserver's PostgreSQL database with its schema first on the search path. */
async function pgSchemaClient(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: pgConn(url) });
  await c.connect();
  await c.query(`SET search_path TO ${new URL(url).searchParams.get("schema") ?? "ami_matrix"}`);
  return c;
}

async function rowCounts(c: pg.Client): Promise<Map<string, number>> {
  const tables = (await c.query("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")).rows.map(
    (r) => r.tablename as string,
  );
  const sql = tables.map((t) => `SELECT '${t}' AS t, count(*)::int AS n FROM ${t}`).join(" UNION ALL ");
  return new Map((await c.query(sql)).rows.map((r) => [r.t as string, r.n as number]));
}

/**
 * The pdu text of message `i` (SQL expression over i, s = stream, ts), as JSON.stringify writes message()'s pdu.
 * $1 room, $2 sender, $3 and $4 the body around the number.
 */
const PDU_SQL = `'{"room_id":' || to_json($1::text) || ',"type":"m.room.message","sender":' || to_json($2::text)
  || ',"content":{"msgtype":"m.text","body":' || to_json($3::text || i || $4::text)
  || '},"origin_server_ts":' || ts || ',"depth":' || s
  || ',"prev_events":[],"auth_events":[],"hashes":{"sha256":"bench"},"signatures":{}}'`;

/**
 * The store's batch wrote one events row, its event_search row (trigger) and one forward extremity per message and
 * nothing else, each pdu as PDU_SQL writes it: what pgBulk copies. Throws if the store's writes have changed.
 */
async function checkTemplate(
  c: pg.Client,
  before: Map<string, number>,
  n: number,
  first: number,
  roomId: string,
  sender: string,
): Promise<void> {
  const after = await rowCounts(c);
  const grown = [...after]
    .filter(([t, k]) => k !== (before.get(t) ?? 0))
    .map(([t, k]) => `${t}+${k - (before.get(t) ?? 0)}`);
  const expected = ["event_search", "events", "forward_extremities"].map((t) => `${t}+${n}`);
  if (grown.sort().join() !== expected.join())
    throw new Error(`the store's batch wrote ${grown.join(", ")}; the bench's bulk fill copies ${expected.join(", ")}`);
  const r = await c.query(
    `SELECT count(*)::int AS bad FROM (SELECT pdu, stream - $5 AS i, stream AS s, origin_server_ts AS ts FROM events
       WHERE stream BETWEEN $5 AND $5 + $6 - 1) e WHERE pdu <> ${PDU_SQL}`,
    [roomId, sender, BODY_HEAD, BODY_TAIL, first, n],
  );
  if (r.rows[0].bad) throw new Error(`${r.rows[0].bad} pdus of the store's batch differ from the bench's SQL copy`);
}

/** Messages from..EVENTS-1 written in the server, 100,000 to a transaction, from the first message's row. */
async function pgBulk(c: pg.Client, from: number, first: number, roomId: string, sender: string, t: number) {
  for (let lo = from; lo < EVENTS; lo += 100_000) {
    const hi = Math.min(EVENTS, lo + 100_000) - 1;
    await c.query("BEGIN");
    await c.query(
      `INSERT INTO events SELECT (jsonb_populate_record(NULL::events, to_jsonb(t) || jsonb_build_object(
         'stream', s, 'event_id', '$bench' || i, 'depth', s, 'origin_server_ts', ts, 'pdu', ${PDU_SQL}))).*
       FROM events t, LATERAL (SELECT g AS i, $5 + g AS s, (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ts
         FROM generate_series($6::int, $7::int) g) x
       WHERE t.stream = $5`,
      [roomId, sender, BODY_HEAD, BODY_TAIL, first, lo, hi],
    );
    await c.query(
      `INSERT INTO forward_extremities (room_id, event_id) SELECT $1, '$bench' || g FROM generate_series($2::int, $3::int) g`,
      [roomId, lo, hi],
    );
    await c.query("COMMIT");
    console.error(`[backup] postgres: ${hi + 1} events in ${round((performance.now() - t) / 1000, 1)} s`);
  }
}

const seconds = (f: () => unknown) => {
  const t = performance.now();
  f();
  return (performance.now() - t) / 1000;
};

function pgConn(url: string): string {
  const u = new URL(url);
  u.searchParams.delete("schema");
  return u.toString();
}

/** create and restore of home `a` into a fresh home; seconds each. */
async function roundTrip(
  backend: Backend,
  a: ReturnType<typeof home>,
  out: string,
  dbs: TestDatabase[],
  dirs: string[],
): Promise<{ create: number; restore: number; mib: number }> {
  const t0 = performance.now();
  const made = await createBackup({
    config: a.config,
    configPath: a.configFile,
    paths: a.paths,
    log: silentLogger,
    dir: out,
  });
  const create = (performance.now() - t0) / 1000;
  let dst: TestDatabase | undefined;
  if (backend === "postgres") {
    dst = await createTestDatabase("postgres", "");
    dbs.push(dst);
  }
  const b = home(dst?.database ?? "sqlite");
  dirs.push(b.dir);
  const t1 = performance.now();
  const restored = await restoreDir(made.path, { config: b.config, configPath: b.configFile, paths: b.paths });
  const restore = (performance.now() - t1) / 1000;
  if (restored.events !== made.events) throw new Error(`restored ${restored.events} events of ${made.events}`);
  rmSync(made.path, { recursive: true, force: true });
  return { create, restore, mib: round(made.bytes / 2 ** 20, 1) };
}

export async function run(backend: Backend): Promise<BenchResult[]> {
  const dbs: TestDatabase[] = [];
  const dirs: string[] = [];
  try {
    let src: TestDatabase | undefined;
    if (backend === "postgres") {
      src = await createTestDatabase("postgres", "");
      dbs.push(src);
    }
    const a = home(src?.database ?? "sqlite");
    dirs.push(a.dir);
    const tf = performance.now();
    await fill(a, backend);
    console.error(`[backup] ${backend}: ${EVENTS} events written in ${round((performance.now() - tf) / 1000, 1)} s`);
    const out = mkdtempSync(join(tmpdir(), "ami-bench-backup-out-"));
    dirs.push(out);

    // 1. Events only: the database's share, extrapolated per 1 M events. Baseline: the bare tools on the same data.
    let dbBase: number;
    let dbRestoreBase: number;
    if (backend === "sqlite") {
      dbBase = seconds(() =>
        execFileSync("sqlite3", [join(a.dir, "data", "matrix", "homeserver.db"), `.backup ${join(out, "plain.db")}`]),
      );
      dbRestoreBase = seconds(() => execFileSync("cp", [join(out, "plain.db"), join(out, "restored.db")]));
    } else {
      const conn = pgConn(src!.database);
      dbBase = seconds(() =>
        execFileSync("pg_dump", [
          "-Fc",
          "--schema=ami_matrix",
          `--file=${join(out, "plain.pgdump")}`,
          `--dbname=${conn}`,
        ]),
      );
      const fresh = await createTestDatabase("postgres", "");
      dbs.push(fresh);
      dbRestoreBase = seconds(() =>
        execFileSync("pg_restore", [
          "--no-owner",
          "--single-transaction",
          `--dbname=${pgConn(fresh.database)}`,
          join(out, "plain.pgdump"),
        ]),
      );
    }
    const ev = await roundTrip(backend, a, out, dbs, dirs);

    const name = backend === "sqlite" ? "SQLite" : "PostgreSQL";
    const k = EVENTS === 1_000_000 ? "1 M" : `${EVENTS / 1000}k`;
    const what = `backup (${name})`;
    const per1M = (s: number) => round((s * 1_000_000) / EVENTS, 1);
    const tool = backend === "sqlite" ? "sqlite3 .backup" : "pg_dump -Fc";
    const rtool = backend === "sqlite" ? "cp of the database file" : "pg_restore";
    const row = untargetedRows(what);
    const rows = [
      row(`create, ${k} events (${ev.mib} MiB)`, round(ev.create, 2), "s", `${tool} alone ${round(dbBase, 2)} s`),
      row(`restore, ${k} events`, round(ev.restore, 2), "s", `${rtool} alone ${round(dbRestoreBase, 2)} s`),
    ];
    if (EVENTS === 1_000_000) return rows;
    return [
      ...rows,
      row(`create per 1 M events (extrapolated from ${k})`, per1M(ev.create), "s", `${tool} alone ${per1M(dbBase)} s`),
      row(
        `restore per 1 M events (extrapolated from ${k})`,
        per1M(ev.restore),
        "s",
        `${rtool} alone ${per1M(dbRestoreBase)} s`,
      ),
    ];
  } finally {
    for (const d of dbs) await d.drop().catch(() => {});
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

/**
 * The store's share, the same for both backends: MEDIA_MIB of 1 MiB media objects copied as create does (chunk-level
 * copy of verified chunks, then SHA-256 and fsync of every file for the manifest) and as restore does (SHA-256 of
 * every file against the manifest, then a file copy), against `cp -r` of the store directory.
 */
export async function runStore(): Promise<BenchResult[]> {
  const out = mkdtempSync(join(tmpdir(), "ami-bench-backup-store-"));
  try {
    const src = openStoreAt(join(out, "src"), configSchema.parse({}).cas);
    for (let i = 0; i < MEDIA_MIB; i++) await src.put(randomBytes(1024 * 1024), { hold: `matrix.media:bench${i}` });
    const base = seconds(() => execFileSync("cp", ["-r", join(out, "src"), join(out, "cp")]));
    let t = performance.now();
    await copyCas(src, join(out, "backup"));
    const files = await listFiles(join(out, "backup"));
    for (const f of files) await hashFile(join(out, "backup", f), true);
    const create = (performance.now() - t) / 1000;
    t = performance.now();
    for (const f of files) await hashFile(join(out, "backup", f));
    await cp(join(out, "backup"), join(out, "restored"), { recursive: true });
    const restore = (performance.now() - t) / 1000;
    const row = (metric: string, s: number): BenchResult => ({
      bench: "backup (store)",
      metric,
      value: round(MEDIA_MIB / s, 1),
      unit: "MiB/s",
      baseline: `cp -r of the store ${round(MEDIA_MIB / base, 1)} MiB/s`,
      target: "",
      met: null,
    });
    return [
      row(`create: ${MEDIA_MIB} MiB media, verified chunk copy + SHA-256 + fsync`, create),
      row(`restore: ${MEDIA_MIB} MiB media, SHA-256 check + copy`, restore),
    ];
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

// BENCH_BACKUP_ONLY=sqlite|postgres|store (comma-separated): only those parts (a 1 M-event run takes minutes each).
const only = process.env.BENCH_BACKUP_ONLY?.split(",");
const part = (name: string, f: () => Promise<BenchResult[]>) => (!only || only.includes(name) ? f() : []);
runIfMain(import.meta, async () => [
  ...(await part("sqlite", () => run("sqlite"))),
  ...(await part("postgres", () => run("postgres"))),
  ...(await part("store", runStore)),
]);
