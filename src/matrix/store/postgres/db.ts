/** The PostgreSQL pool: connection settings, named prepared statements, error mapping and migrations. */
import pg from "pg";
import { AmiError } from "../../../core/errors.ts";
import type { Logger } from "../../../core/logger.ts";
import { nulInText, schemaTooNew } from "../common.ts";
import type { Sql, SqlParam } from "../sql.ts";

export const DEFAULT_SCHEMA = "ami_matrix";

/** int8 (bigint, count(*)) as a JS number: stream positions and timestamps stay far below 2^53. */
const INT8 = 20;
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: any) =>
    oid === INT8 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as any,
};

/** Connection settings from a postgres:// URL. `?schema=name` picks the schema (default ami_matrix). */
export function parseUrl(url: string): { connectionString: string; schema: string; options: string; where: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new AmiError("AMI_INVALID_CONFIG", "'database' is not a valid postgres:// URL");
  }
  const schema = u.searchParams.get("schema") ?? DEFAULT_SCHEMA;
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema))
    throw new AmiError("AMI_INVALID_CONFIG", `'database' schema ${JSON.stringify(schema)} must match [a-z_][a-z0-9_]*`);
  u.searchParams.delete("schema");
  // pg lets the URL's own `options` override ours, so ours are merged into it: search_path = our schema only,
  // so unqualified names never reach another schema's tables. (A URL may add e.g. "-c synchronous_commit=off".)
  const options = [u.searchParams.get("options"), `-c search_path=${schema}`].filter(Boolean).join(" ");
  u.searchParams.delete("options");
  // For messages: never the password.
  const where = `${u.hostname || "localhost"}:${u.port || 5432}${u.pathname}`;
  return { connectionString: u.toString(), schema, options, where };
}

/** A PostgreSQL error as the Store contract wants it; unique violations are left to the caller. */
export function mapPgError(e: unknown): unknown {
  const code = (e as { code?: string })?.code;
  // NUL in text (22021) or in a JSON escape (22P05): PostgreSQL cannot store it; the input is invalid.
  if (code === "22021" || code === "22P05") return nulInText();
  return e;
}
export const isUniqueViolation = (e: unknown): boolean => (e as { code?: string })?.code === "23505";
export const isForeignKeyViolation = (e: unknown): boolean => (e as { code?: string })?.code === "23503";

export class PgDb {
  readonly pool: pg.Pool;
  readonly schema: string;
  readonly where: string;
  private readonly names = new Map<string, string>();
  private ended = false;

  constructor(url: string, logger: Logger) {
    const { connectionString, schema, options, where } = parseUrl(url);
    this.schema = schema;
    this.where = where;
    this.pool = new pg.Pool({
      connectionString,
      types,
      options,
      max: 10,
      idleTimeoutMillis: 30_000,
      connectionTimeoutMillis: 10_000,
      application_name: "ami-streams",
    });
    // An idle client dying (server restart) must not crash the process; the next query gets a new client.
    this.pool.on("error", (err) => logger.warn("postgres idle client error", { err: err.message }));
  }

  /** Run one statement as a named prepared statement (parsed and planned once per connection), on the pool or on
   * a client inside tx(). */
  async query(
    text: string,
    values: unknown[] = [],
    on: pg.Pool | pg.PoolClient = this.pool,
  ): Promise<pg.QueryResult<any>> {
    let name = this.names.get(text);
    if (!name) {
      name = `ami_${this.names.size}`;
      this.names.set(text, name);
    }
    try {
      return await on.query({ name, text, values });
    } catch (e) {
      throw mapPgError(e);
    }
  }

  async rows(text: string, values: unknown[] = []): Promise<any[]> {
    return (await this.query(text, values)).rows;
  }

  async row(text: string, values: unknown[] = []): Promise<any | null> {
    return (await this.query(text, values)).rows[0] ?? null;
  }

  /** BEGIN ... COMMIT on one client; ROLLBACK on error (a client that cannot roll back is discarded). */
  tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return this.txOwn(async (c) => {
      await c.query("BEGIN");
      const result = await fn(c);
      await c.query("COMMIT");
      return result;
    });
  }

  /**
   * A transaction whose BEGIN and COMMIT `fn` sends itself (to carry statements of its own in the same round
   * trips); ROLLBACK on error, as tx.
   */
  async txOwn<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.pool.connect();
    let broken: Error | undefined;
    try {
      return await fn(c);
    } catch (e) {
      await c.query("ROLLBACK").catch((err: Error) => {
        broken = err;
      });
      throw mapPgError(e);
    } finally {
      c.release(broken);
    }
  }

  /** Create the schema and apply pending migrations, in one transaction under an advisory lock. */
  async migrate(migrations: string[]): Promise<void> {
    await this.tx(async (c) => {
      await c.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`ami-streams:${this.schema}`]);
      await c.query(`CREATE SCHEMA IF NOT EXISTS ${this.schema}`);
      await c.query(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_ts BIGINT NOT NULL)",
      );
      const current = Number((await c.query("SELECT max(version) AS v FROM schema_version")).rows[0].v ?? 0);
      if (current > migrations.length) throw schemaTooNew(current, migrations.length);
      for (let v = current; v < migrations.length; v++) {
        await c.query(migrations[v]);
        await c.query("INSERT INTO schema_version (version, applied_ts) VALUES ($1, $2)", [v + 1, Date.now()]);
      }
    });
  }

  async end(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    await this.pool.end();
  }
}

/** `?` placeholders as PostgreSQL's $1, $2, ... (the shared SQL has no other `?`). */
const numbered = new Map<string, string>();
export function numberPlaceholders(sql: string): string {
  let out = numbered.get(sql);
  if (out === undefined) {
    let n = 0;
    out = sql.replace(/\?/g, () => `$${++n}`);
    numbered.set(sql, out);
  }
  return out;
}

/** The Sql seam on PostgreSQL; `conn` throws once the store is closed. */
export class PgSql implements Sql {
  readonly #conn: () => PgDb;
  constructor(conn: () => PgDb) {
    this.#conn = conn;
  }
  async all(sql: string, params: SqlParam[] = []): Promise<any[]> {
    return this.#conn().rows(numberPlaceholders(sql), params);
  }
  async get(sql: string, params: SqlParam[] = []): Promise<any | null> {
    return this.#conn().row(numberPlaceholders(sql), params);
  }
  async run(sql: string, params: SqlParam[] = []): Promise<number> {
    return (await this.#conn().query(numberPlaceholders(sql), params)).rowCount ?? 0;
  }
  async atomic(statements: [string, SqlParam[]][]): Promise<number[]> {
    const d = this.#conn();
    return d.tx(async (c) => {
      const changed: number[] = [];
      for (const [sql, params] of statements)
        changed.push((await d.query(numberPlaceholders(sql), params, c)).rowCount ?? 0);
      return changed;
    });
  }
  anyOf(expr: string): string {
    return `${expr} = ANY(?::text[])`;
  }
  isUniqueViolation = isUniqueViolation;
  isForeignKeyViolation = isForeignKeyViolation;
}
