/** The KeyBackupStore on PostgreSQL (room_keys versions and keys). */
import type pg from "pg";
import { backupKeyFromRow, backupVersionNumber } from "../keys-rows.ts";
import { type BackupKeyRow, type BackupWriteResult, isBetterBackupKey, type KeyBackupStore } from "../keys-types.ts";
import { SqlKeyBackupStoreBase, UPSERT_BACKUP_KEY, upsertBackupKeyParams } from "../sql/key-backup.ts";
import { numberPlaceholders, type PgDb, PgSql } from "./db.ts";

/** In a transaction, with the user's backup rows locked: the version must exist and (for writes) be current. */
async function checkVersion(
  d: PgDb,
  c: pg.PoolClient,
  userId: string,
  v: number | null,
  mustBeCurrent: boolean,
): Promise<BackupWriteResult | null> {
  await d.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`backup:${userId}`], c);
  const latest = await d.query(
    "SELECT max(version) AS v FROM backup_versions WHERE user_id = $1 AND NOT deleted",
    [userId],
    c,
  );
  const current = latest.rows[0].v === null ? null : Number(latest.rows[0].v);
  const exists =
    v !== null &&
    (await d.query("SELECT 1 FROM backup_versions WHERE user_id = $1 AND version = $2 AND NOT deleted", [userId, v], c))
      .rowCount === 1;
  if (mustBeCurrent && v !== current && (exists || current !== null))
    return { ok: false, reason: "wrong_version", current: current === null ? null : String(current) };
  if (!exists) return { ok: false, reason: "not_found" };
  return null;
}

async function etagAndCount(
  d: PgDb,
  c: pg.PoolClient,
  userId: string,
  v: number,
  bump: boolean,
): Promise<BackupWriteResult> {
  if (bump)
    await d.query("UPDATE backup_versions SET etag = etag + 1 WHERE user_id = $1 AND version = $2", [userId, v], c);
  const r = await d.query(
    `SELECT etag, (SELECT count(*) FROM backup_keys k WHERE k.user_id = b.user_id AND k.version = b.version) AS n
     FROM backup_versions b WHERE user_id = $1 AND version = $2`,
    [userId, v],
    c,
  );
  return { ok: true, etag: String(r.rows[0].etag), count: Number(r.rows[0].n) };
}

export class PostgresKeyBackupStore extends SqlKeyBackupStoreBase implements KeyBackupStore {
  readonly #conn: () => PgDb;
  /** `conn` throws once the store is closed. */
  constructor(conn: () => PgDb) {
    super(new PgSql(conn));
    this.#conn = conn;
  }

  async createBackupVersion(userId: string, algorithm: string, authData: Record<string, any>) {
    const d = this.#conn();
    return d.tx(async (c) => {
      // Serialise version allocation per user (two concurrent creates must not pick the same number).
      await d.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`backup:${userId}`], c);
      const r = await d.query(
        "SELECT coalesce(max(version), 0) + 1 AS v FROM backup_versions WHERE user_id = $1",
        [userId],
        c,
      );
      const v = Number(r.rows[0].v);
      await d.query(
        "INSERT INTO backup_versions (user_id, version, algorithm, auth_data) VALUES ($1, $2, $3, $4)",
        [userId, v, algorithm, JSON.stringify(authData)],
        c,
      );
      return String(v);
    });
  }

  async putBackupKeys(userId: string, version: string, keys: BackupKeyRow[]): Promise<BackupWriteResult> {
    const d = this.#conn();
    const v = backupVersionNumber(version);
    return d.tx(async (c) => {
      const bad = await checkVersion(d, c, userId, v, true);
      if (bad) return bad;
      let changed = false;
      for (const k of keys) {
        const old = await d.query(
          "SELECT * FROM backup_keys WHERE user_id = $1 AND version = $2 AND room_id = $3 AND session_id = $4",
          [userId, v, k.roomId, k.sessionId],
          c,
        );
        if (old.rows[0] && !isBetterBackupKey(backupKeyFromRow(old.rows[0]).data, k.data)) continue;
        await d.query(numberPlaceholders(UPSERT_BACKUP_KEY), upsertBackupKeyParams(userId, v!, k), c);
        changed = true;
      }
      return etagAndCount(d, c, userId, v!, changed);
    });
  }

  async deleteBackupKeys(
    userId: string,
    version: string,
    roomId?: string,
    sessionId?: string,
  ): Promise<BackupWriteResult> {
    const d = this.#conn();
    const v = backupVersionNumber(version);
    return d.tx(async (c) => {
      const bad = await checkVersion(d, c, userId, v, false);
      if (bad) return bad;
      const r = await d.query(
        `DELETE FROM backup_keys WHERE user_id = $1 AND version = $2 AND ($3::text IS NULL OR room_id = $3)
           AND ($4::text IS NULL OR session_id = $4)`,
        [userId, v, roomId ?? null, sessionId ?? null],
        c,
      );
      return etagAndCount(d, c, userId, v!, (r.rowCount ?? 0) > 0);
    });
  }
}
