/** The SQLite connection: pragmas, a prepared-statement cache, transactions and migrations. */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync, type SQLInputValue, type StatementResultingChanges, type StatementSync } from "node:sqlite";
import { nulInText, schemaTooNew } from "../common.ts";
import type { Sql, SqlParam } from "../sql.ts";

/** SQLite extended result codes for uniqueness violations (SQLITE_CONSTRAINT_PRIMARYKEY, _UNIQUE). */
const UNIQUE_CODES = new Set([1555, 2067]);
const errcode = (e: unknown): number => (e as { errcode?: number })?.errcode ?? 0;
export const isUniqueViolation = (e: unknown): boolean => UNIQUE_CODES.has(errcode(e));
/** SQLITE_CONSTRAINT_FOREIGNKEY */
export const isForeignKeyViolation = (e: unknown): boolean => errcode(e) === 787;

export class SqliteDb {
  readonly db: DatabaseSync;
  private readonly cache = new Map<string, StatementSync>();

  constructor(path: string) {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    // timeout = busy_timeout: another process (the CLI) may hold the write lock for a moment.
    this.db = new DatabaseSync(path, { timeout: 10_000, enableForeignKeyConstraints: true });
    // WAL: a commit is in the WAL file once COMMIT returns, so kill -9 loses nothing committed. NORMAL skips the
    // per-commit fsync (only power loss could drop the last commits), which is what makes thousands of txns/s cheap.
    // cache_size: 8 MiB of pages in process memory (resident once filled); the OS page cache holds the rest of the
    // file, so a miss is a pread, not a disk read. 20 MiB bought no measurable speed (bench/matrix) for 12 MB RSS.
    this.db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = NORMAL;
      PRAGMA foreign_keys = ON;
      PRAGMA temp_store = MEMORY;
      PRAGMA cache_size = -8000;
      PRAGMA wal_autocheckpoint = 10000;
      PRAGMA journal_size_limit = 67108864;
    `);
  }

  /** A cached prepared statement for `sql`. */
  q(sql: string): StatementSync {
    let s = this.cache.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.cache.set(sql, s);
    }
    return s;
  }

  /** Run a write statement; text containing NUL is refused (see nulInText). */
  run(sql: string, ...params: SQLInputValue[]): StatementResultingChanges {
    for (const p of params) if (typeof p === "string" && p.includes("\0")) throw nulInText();
    return this.q(sql).run(...params);
  }

  /** Run `fn` in one write transaction (BEGIN IMMEDIATE takes the write lock up front: no upgrade deadlocks). */
  tx<T>(fn: () => T): T {
    this.q("BEGIN IMMEDIATE").run();
    try {
      const result = fn();
      this.q("COMMIT").run();
      return result;
    } catch (e) {
      if (this.db.isTransaction) this.q("ROLLBACK").run();
      throw e;
    }
  }

  /** Apply every migration newer than the database's schema_version, each in its own transaction. */
  migrate(migrations: string[]): void {
    this.tx(() => {
      this.db.exec(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_ts INTEGER NOT NULL)",
      );
    });
    for (;;) {
      const done = this.tx(() => {
        const current = Number((this.q("SELECT max(version) AS v FROM schema_version").get() as any).v ?? 0);
        if (current > migrations.length) throw schemaTooNew(current, migrations.length);
        if (current === migrations.length) return true;
        this.db.exec(migrations[current]);
        this.q("INSERT INTO schema_version (version, applied_ts) VALUES (?, ?)").run(current + 1, Date.now());
        return false;
      });
      if (done) return;
    }
  }

  close(): void {
    if (!this.db.isOpen) return;
    try {
      this.db.exec("PRAGMA optimize");
    } catch {
      // best effort: statistics only
    }
    this.cache.clear();
    this.db.close();
  }
}

/** A parameter as node:sqlite takes it: booleans as 0/1, lists as one JSON text (read back with json_each). */
export function bind(params: SqlParam[]): SQLInputValue[] {
  return params.map((p) => {
    if (typeof p === "string" && p.includes("\0")) throw nulInText();
    if (typeof p === "boolean") return p ? 1 : 0;
    if (Array.isArray(p)) return JSON.stringify(p);
    return p as SQLInputValue;
  });
}

/** The Sql seam on SQLite; `conn` throws once the store is closed. Work is synchronous inside async methods. */
export class SqliteSql implements Sql {
  readonly #conn: () => SqliteDb;
  constructor(conn: () => SqliteDb) {
    this.#conn = conn;
  }
  async all(sql: string, params: SqlParam[] = []): Promise<any[]> {
    return this.#conn()
      .q(sql)
      .all(...bind(params));
  }
  async get(sql: string, params: SqlParam[] = []): Promise<any | null> {
    return (
      this.#conn()
        .q(sql)
        .get(...bind(params)) ?? null
    );
  }
  async run(sql: string, params: SqlParam[] = []): Promise<number> {
    return Number(
      this.#conn()
        .q(sql)
        .run(...bind(params)).changes,
    );
  }
  async atomic(statements: [string, SqlParam[]][]): Promise<number[]> {
    const d = this.#conn();
    return d.tx(() => statements.map(([sql, params]) => Number(d.q(sql).run(...bind(params)).changes)));
  }
  anyOf(expr: string): string {
    return `${expr} IN (SELECT value FROM json_each(?))`;
  }
  isUniqueViolation = isUniqueViolation;
  isForeignKeyViolation = isForeignKeyViolation;
}
