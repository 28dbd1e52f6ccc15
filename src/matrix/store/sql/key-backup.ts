/**
 * The KeyBackupStore methods both dialects write alike; each backend's KeyBackupStore extends this with version
 * allocation and the key writes, which check the version inside their own transaction (sqlite/key-backup.ts,
 * postgres/key-backup.ts).
 */
import { backupKeyFromRow, backupVersionNumber } from "../keys-rows.ts";
import type { BackupKeyRow, BackupVersionRow } from "../keys-types.ts";
import type { Sql, SqlParam } from "../sql.ts";

/** Insert or replace one key of a backup version; each backend runs it inside its putBackupKeys transaction. */
export const UPSERT_BACKUP_KEY = `INSERT INTO backup_keys (user_id, version, room_id, session_id, first_message_index,
    forwarded_count, is_verified, session_data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET
    first_message_index = excluded.first_message_index, forwarded_count = excluded.forwarded_count,
    is_verified = excluded.is_verified, session_data = excluded.session_data`;

export const upsertBackupKeyParams = (userId: string, version: number, k: BackupKeyRow): SqlParam[] => [
  userId,
  version,
  k.roomId,
  k.sessionId,
  k.data.first_message_index,
  k.data.forwarded_count,
  k.data.is_verified,
  JSON.stringify(k.data.session_data),
];

export class SqlKeyBackupStoreBase {
  protected readonly sql: Sql;
  constructor(sql: Sql) {
    this.sql = sql;
  }

  async getBackupVersion(userId: string, version: string | null): Promise<BackupVersionRow | null> {
    const v = version === null ? null : backupVersionNumber(version);
    if (version !== null && v === null) return null;
    const r =
      v === null
        ? await this.sql.get(
            "SELECT * FROM backup_versions WHERE user_id = ? AND NOT deleted ORDER BY version DESC LIMIT 1",
            [userId],
          )
        : await this.sql.get("SELECT * FROM backup_versions WHERE user_id = ? AND version = ? AND NOT deleted", [
            userId,
            v,
          ]);
    if (!r) return null;
    const n = await this.sql.get("SELECT count(*) AS n FROM backup_keys WHERE user_id = ? AND version = ?", [
      userId,
      r.version,
    ]);
    return {
      userId,
      version: String(r.version),
      algorithm: r.algorithm,
      authData: JSON.parse(r.auth_data),
      etag: String(r.etag),
      count: Number(n.n),
    };
  }

  async updateBackupVersion(userId: string, version: string, authData: Record<string, any>): Promise<boolean> {
    const v = backupVersionNumber(version);
    if (v === null) return false;
    const changed = await this.sql.run(
      "UPDATE backup_versions SET auth_data = ? WHERE user_id = ? AND version = ? AND NOT deleted",
      [JSON.stringify(authData), userId, v],
    );
    return changed === 1;
  }

  async deleteBackupVersion(userId: string, version: string): Promise<boolean> {
    const v = backupVersionNumber(version);
    if (v === null) return false;
    const [deleted] = await this.sql.atomic([
      ["UPDATE backup_versions SET deleted = ? WHERE user_id = ? AND version = ? AND NOT deleted", [true, userId, v]],
      ["DELETE FROM backup_keys WHERE user_id = ? AND version = ?", [userId, v]],
    ]);
    return deleted === 1;
  }

  async getBackupKeys(userId: string, version: string, roomId?: string, sessionId?: string): Promise<BackupKeyRow[]> {
    const v = backupVersionNumber(version);
    if (v === null) return [];
    const rows = await this.sql.all(
      `SELECT * FROM backup_keys WHERE user_id = ? AND version = ? AND (CAST(? AS TEXT) IS NULL OR room_id = ?)
         AND (CAST(? AS TEXT) IS NULL OR session_id = ?) ORDER BY room_id, session_id`,
      [userId, v, roomId ?? null, roomId ?? null, sessionId ?? null, sessionId ?? null],
    );
    return rows.map(backupKeyFromRow);
  }
}
