/** The KeyBackupStore on SQLite (room_keys versions and keys): every write is one transaction. */
import { backupKeyFromRow, backupVersionNumber } from "../keys-rows.ts";
import { type BackupKeyRow, type BackupWriteResult, isBetterBackupKey, type KeyBackupStore } from "../keys-types.ts";
import { SqlKeyBackupStoreBase, UPSERT_BACKUP_KEY, upsertBackupKeyParams } from "../sql/key-backup.ts";
import { bind, type SqliteDb, SqliteSql } from "./db.ts";

/** In a transaction: the version must exist and (for writes) be the current one. */
function checkVersion(d: SqliteDb, userId: string, v: number | null, mustBeCurrent: boolean): BackupWriteResult | null {
  const latest = d
    .q("SELECT max(version) AS v FROM backup_versions WHERE user_id = ? AND deleted = 0")
    .get(userId) as any;
  const current = latest.v === null ? null : Number(latest.v);
  const exists =
    v !== null && d.q("SELECT 1 FROM backup_versions WHERE user_id = ? AND version = ? AND deleted = 0").get(userId, v);
  if (mustBeCurrent && v !== current && (exists || current !== null))
    return { ok: false, reason: "wrong_version", current: current === null ? null : String(current) };
  if (!exists) return { ok: false, reason: "not_found" };
  return null;
}

function etagAndCount(d: SqliteDb, userId: string, v: number, bump: boolean): BackupWriteResult {
  if (bump) d.run("UPDATE backup_versions SET etag = etag + 1 WHERE user_id = ? AND version = ?", userId, v);
  const r = d
    .q(
      `SELECT etag, (SELECT count(*) FROM backup_keys k WHERE k.user_id = b.user_id AND k.version = b.version) AS n
       FROM backup_versions b WHERE user_id = ? AND version = ?`,
    )
    .get(userId, v) as any;
  return { ok: true, etag: String(r.etag), count: Number(r.n) };
}

export class SqliteKeyBackupStore extends SqlKeyBackupStoreBase implements KeyBackupStore {
  readonly #conn: () => SqliteDb;
  /** `conn` throws once the store is closed. */
  constructor(conn: () => SqliteDb) {
    super(new SqliteSql(conn));
    this.#conn = conn;
  }

  async createBackupVersion(userId: string, algorithm: string, authData: Record<string, any>): Promise<string> {
    const d = this.#conn();
    return d.tx(() => {
      const r = d
        .q("SELECT coalesce(max(version), 0) + 1 AS v FROM backup_versions WHERE user_id = ?")
        .get(userId) as any;
      d.run(
        "INSERT INTO backup_versions (user_id, version, algorithm, auth_data) VALUES (?, ?, ?, ?)",
        userId,
        r.v,
        algorithm,
        JSON.stringify(authData),
      );
      return String(r.v);
    });
  }

  async putBackupKeys(userId: string, version: string, keys: BackupKeyRow[]): Promise<BackupWriteResult> {
    const d = this.#conn();
    const v = backupVersionNumber(version);
    return d.tx(() => {
      const bad = checkVersion(d, userId, v, true);
      if (bad) return bad;
      let changed = false;
      for (const k of keys) {
        const old = d
          .q("SELECT * FROM backup_keys WHERE user_id = ? AND version = ? AND room_id = ? AND session_id = ?")
          .get(userId, v, k.roomId, k.sessionId);
        if (old && !isBetterBackupKey(backupKeyFromRow(old).data, k.data)) continue;
        d.q(UPSERT_BACKUP_KEY).run(...bind(upsertBackupKeyParams(userId, v!, k)));
        changed = true;
      }
      return etagAndCount(d, userId, v!, changed);
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
    return d.tx(() => {
      const bad = checkVersion(d, userId, v, false);
      if (bad) return bad;
      const r = d.run(
        `DELETE FROM backup_keys WHERE user_id = ? AND version = ? AND (? IS NULL OR room_id = ?)
           AND (? IS NULL OR session_id = ?)`,
        userId,
        v,
        roomId ?? null,
        roomId ?? null,
        sessionId ?? null,
        sessionId ?? null,
      );
      return etagAndCount(d, userId, v!, Number(r.changes) > 0);
    });
  }
}
