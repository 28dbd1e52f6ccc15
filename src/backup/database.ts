/**
 * The homeserver database in a backup: SQLite through the online backup API (one step, so one read transaction:
 * a consistent snapshot while the server writes), PostgreSQL through `pg_dump` (one repeatable-read snapshot) in its
 * custom format, checked with `pg_restore` and restored with it into an empty schema.
 */
import { spawn } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { rename } from "node:fs/promises";
import { resolve } from "node:path";
import { DatabaseSync, backup as sqliteBackup } from "node:sqlite";
import pg from "pg";
import { AmiError } from "../core/errors.ts";
import type { DbCheck } from "./sqlite-check.ts";

export type DbTarget =
  | { backend: "sqlite"; path: string }
  | { backend: "postgres"; url: string; schema: string; where: string };

/** The database a `matrix.database` value names (`dataDir`: the homeserver's data directory). */
export function dbTarget(database: string, dataDir: string): DbTarget {
  if (database === "sqlite" || database.startsWith("sqlite:")) {
    const given = database === "sqlite" ? "homeserver.db" : database.slice("sqlite:".length);
    if (given === ":memory:")
      throw new AmiError("AMI_INVALID_INPUT", "an in-memory SQLite database has nothing to back up");
    return { backend: "sqlite", path: resolve(dataDir, given) };
  }
  const u = new URL(database);
  const schema = u.searchParams.get("schema") ?? "ami_matrix";
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema))
    throw new AmiError(
      "AMI_INVALID_CONFIG",
      `'matrix.database' schema ${JSON.stringify(schema)} must match [a-z_][a-z0-9_]*`,
    );
  return {
    backend: "postgres",
    url: database,
    schema,
    where: `${u.hostname || "localhost"}:${u.port || 5432}${u.pathname}`,
  };
}

// ---- SQLite ---------------------------------------------------------------------------------------------------

/** Copy a live SQLite database to `dest` (a consistent snapshot), left in rollback-journal mode so it opens read-only. */
export async function sqliteDump(src: string, dest: string): Promise<void> {
  if (!existsSync(src)) throw new AmiError("M_NOT_FOUND", `no SQLite database at ${src}`);
  const db = new DatabaseSync(src);
  try {
    db.exec("PRAGMA busy_timeout = 10000");
    // Every page in one step: the copy is made inside one read transaction (WAL writers go on meanwhile). Steps of
    // a few pages would restart whenever the server commits between them.
    await sqliteBackup(db, dest, { rate: 2 ** 31 - 1 });
  } finally {
    db.close();
  }
  const copy = new DatabaseSync(dest);
  try {
    copy.exec("PRAGMA journal_mode = DELETE");
  } finally {
    copy.close();
  }
}

/** Put a checked copy in place at `dest` (temp + rename); stale WAL files of an old database there are removed. */
export async function sqliteRestore(file: string, dest: string): Promise<void> {
  const { copyFile } = await import("node:fs/promises");
  const tmp = `${dest}.restore-${process.pid}`;
  await copyFile(file, tmp);
  for (const ext of ["-wal", "-shm", "-journal"]) rmSync(`${dest}${ext}`, { force: true });
  await rename(tmp, dest);
}

export function sqliteHasData(path: string): boolean {
  return existsSync(path);
}

// ---- PostgreSQL -----------------------------------------------------------------------------------------------

/**
 * libpq settings for the client tools: the URL without our own `schema`/`options` parameters and without its
 * password, which goes in PGPASSWORD (never on a command line that `ps` shows).
 */
function libpq(url: string): { conn: string; env: NodeJS.ProcessEnv } {
  const u = new URL(url);
  u.searchParams.delete("schema");
  u.searchParams.delete("options");
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (u.password) env.PGPASSWORD = decodeURIComponent(u.password);
  u.password = "";
  return { conn: u.toString(), env };
}

interface RunResult {
  code: number;
  stderr: string;
}

/** Run a PostgreSQL client tool; a missing one is a clear error naming the Debian package. */
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, signal?: AbortSignal): Promise<RunResult> {
  return new Promise((resolveRun, reject) => {
    const p = spawn(cmd, args, { env, stdio: ["ignore", "ignore", "pipe"], signal });
    let stderr = "";
    p.stderr.setEncoding("utf8").on("data", (d: string) => {
      if (stderr.length < 64 * 1024) stderr += d;
    });
    p.once("error", (e: NodeJS.ErrnoException) =>
      reject(
        e.code === "ENOENT"
          ? new AmiError(
              "AMI_UNAVAILABLE",
              `${cmd} not found: install PostgreSQL's client tools (Debian: postgresql-client)`,
            )
          : e,
      ),
    );
    p.once("close", (code) => resolveRun({ code: code ?? 1, stderr: stderr.trim() }));
  });
}

export async function pgToolVersion(tool = "pg_dump"): Promise<string> {
  const out = await new Promise<string>((res, rej) => {
    const p = spawn(tool, ["--version"], { stdio: ["ignore", "pipe", "ignore"] });
    let s = "";
    p.stdout.setEncoding("utf8").on("data", (d: string) => (s += d));
    p.once("error", (e: NodeJS.ErrnoException) =>
      rej(
        e.code === "ENOENT"
          ? new AmiError(
              "AMI_UNAVAILABLE",
              `${tool} not found: install PostgreSQL's client tools (Debian: postgresql-client)`,
            )
          : e,
      ),
    );
    p.once("close", () => res(s.trim()));
  });
  return out;
}

/**
 * `pg_dump` of the homeserver's schema (custom format: compressed, restorable by table), with the figures the
 * manifest records read in the very snapshot the dump is made from: a repeatable-read transaction exports its
 * snapshot and stays open while `pg_dump --snapshot` reads it (as pg_dump's own parallel workers do).
 */
export async function pgDump(
  t: Extract<DbTarget, { backend: "postgres" }>,
  dest: string,
  signal?: AbortSignal,
): Promise<DbCheck> {
  return pgClient(t.url, async (c) => {
    await c.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    try {
      const snapshot = (await c.query("SELECT pg_export_snapshot() AS s")).rows[0].s as string;
      const v = await c.query(`SELECT max(version)::int AS v FROM ${t.schema}.schema_version`);
      const n = await c.query(`SELECT count(*)::int AS n FROM ${t.schema}.events`);
      const { conn, env } = libpq(t.url);
      const r = await run(
        "pg_dump",
        [
          "--format=custom",
          "--no-owner",
          "--no-privileges",
          `--snapshot=${snapshot}`,
          `--schema=${t.schema}`,
          `--file=${dest}`,
          `--dbname=${conn}`,
        ],
        env,
        signal,
      );
      if (r.code !== 0)
        throw new AmiError("AMI_UNAVAILABLE", `pg_dump of ${t.where} (schema ${t.schema}) failed: ${r.stderr}`);
      return { schemaVersion: v.rows[0].v ?? 0, events: n.rows[0].n as number };
    } finally {
      await c.query("ROLLBACK").catch(() => {});
    }
  });
}

/** Read the whole dump (its table of contents and every data block) without restoring it anywhere. */
export async function pgCheck(file: string): Promise<void> {
  const r = await run("pg_restore", ["--file=/dev/null", file], process.env);
  if (r.code !== 0) throw new Error(`pg_restore cannot read the dump: ${r.stderr.split("\n").slice(0, 3).join("; ")}`);
}

async function pgClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const { conn } = libpq(url);
  const u = new URL(url);
  const c = new pg.Client({
    connectionString: conn,
    password: u.password ? decodeURIComponent(u.password) : undefined,
  });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

const schemaHasTables = (c: pg.Client, schema: string) =>
  c
    .query("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = $1", [schema])
    .then((r) => (r.rows[0].n as number) > 0);

export function pgHasData(t: Extract<DbTarget, { backend: "postgres" }>): Promise<boolean> {
  return pgClient(t.url, (c) => schemaHasTables(c, t.schema));
}

/**
 * Restore a dump of schema `from` into `t`'s database and schema. The target schema must be empty (or `force`: it
 * is dropped first); a dump of another schema name is restored under its own name, then renamed.
 */
export async function pgRestore(
  t: Extract<DbTarget, { backend: "postgres" }>,
  file: string,
  from: string,
  force: boolean,
): Promise<void> {
  await pgClient(t.url, async (c) => {
    if (await schemaHasTables(c, t.schema)) {
      if (!force)
        throw new AmiError("AMI_BACKUP_TARGET_NOT_EMPTY", `schema ${t.schema} of ${t.where} already holds tables`);
    }
    if (force) await c.query(`DROP SCHEMA IF EXISTS ${t.schema} CASCADE`);
    else await c.query(`DROP SCHEMA IF EXISTS ${t.schema}`); // empty: created again by the dump (or the rename)
    if (from !== t.schema) {
      const r = await c.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [from]);
      if (r.rowCount)
        throw new AmiError(
          "AMI_BACKUP_TARGET_NOT_EMPTY",
          `${t.where} already has a schema ${from} (the backup's); restore into another database or drop it`,
        );
    }
  });
  const { conn, env } = libpq(t.url);
  const r = await run(
    "pg_restore",
    ["--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction", `--dbname=${conn}`, file],
    env,
  );
  if (r.code !== 0) throw new AmiError("AMI_UNAVAILABLE", `pg_restore into ${t.where} failed: ${r.stderr}`);
  if (from !== t.schema) await pgClient(t.url, (c) => c.query(`ALTER SCHEMA ${from} RENAME TO ${t.schema}`));
}

/** Events in the restored schema (checked against the manifest's count, read in the dump's snapshot). */
export function pgEvents(t: Extract<DbTarget, { backend: "postgres" }>): Promise<number> {
  return pgClient(t.url, async (c) => (await c.query(`SELECT count(*)::int AS n FROM ${t.schema}.events`)).rows[0].n);
}
