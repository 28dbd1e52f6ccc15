/**
 * The seam that lets one statement serve both backends. SQL written against it uses `?` placeholders (numbered
 * for PostgreSQL by its adapter), passes booleans as parameters (SQLite gets 0/1) and string lists as one
 * parameter matched by anyOf (json_each on SQLite, a text[] on PostgreSQL). Any call given text containing NUL
 * rejects with nulInText on both (PostgreSQL cannot store it). Only what both dialects read alike goes through
 * here (sql/); statements that differ or earn a dialect's own form stay in sqlite/ and postgres/.
 */

export type SqlParam = string | number | boolean | null | readonly string[];

export interface Sql {
  /** Every row of a query. */
  all(sql: string, params?: SqlParam[]): Promise<any[]>;
  /** The first row of a query (or of a write's RETURNING), or null. */
  get(sql: string, params?: SqlParam[]): Promise<any | null>;
  /** A write; resolves to the number of rows it changed. */
  run(sql: string, params?: SqlParam[]): Promise<number>;
  /** Several writes in one transaction, all applied or none; resolves to the rows each changed. */
  atomic(statements: [sql: string, params: SqlParam[]][]): Promise<number[]>;
  /** The condition "`expr` is one of the strings of a list": one `?`, bound to a string[] parameter. */
  anyOf(expr: string): string;
  isUniqueViolation(e: unknown): boolean;
  isForeignKeyViolation(e: unknown): boolean;
}
