/**
 * The KeyStore methods both dialects write alike; each backend's KeyStore extends this with the ones that need
 * its own transaction shape or batching (one-time key upload and claim, to-device queueing, device-list marks,
 * the per-device batched counts): sqlite/keys.ts, postgres/keys.ts.
 */
import type {
  CrossSigningKeyRow,
  CrossSigningKeyType,
  KeySignatureRow,
  OneTimeKey,
  ToDeviceRow,
} from "../keys-types.ts";
import type { Sql } from "../sql.ts";

export class SqlKeyStoreBase {
  protected readonly sql: Sql;
  constructor(sql: Sql) {
    this.sql = sql;
  }

  async setDeviceKeys(userId: string, deviceId: string, keys: Record<string, any>): Promise<void> {
    await this.sql.run(
      `INSERT INTO e2e_device_keys (user_id, device_id, keys) VALUES (?, ?, ?)
       ON CONFLICT (user_id, device_id) DO UPDATE SET keys = excluded.keys`,
      [userId, deviceId, JSON.stringify(keys)],
    );
  }

  async getDeviceKeys(userIds: string[]): Promise<{ userId: string; deviceId: string; keys: Record<string, any> }[]> {
    if (userIds.length === 0) return [];
    const rows = await this.sql.all(
      `SELECT k.user_id, k.device_id, k.keys FROM e2e_device_keys k
         JOIN devices v ON v.user_id = k.user_id AND v.device_id = k.device_id
       WHERE ${this.sql.anyOf("k.user_id")} ORDER BY k.user_id, k.device_id`,
      [userIds],
    );
    return rows.map((r) => ({ userId: r.user_id, deviceId: r.device_id, keys: JSON.parse(r.keys) }));
  }

  async countOneTimeKeys(userId: string, deviceId: string): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const r of await this.sql.all(
      "SELECT algorithm, count(*) AS n FROM e2e_one_time_keys WHERE user_id = ? AND device_id = ? GROUP BY algorithm",
      [userId, deviceId],
    ))
      out[r.algorithm] = Number(r.n);
    return out;
  }

  async setFallbackKeys(userId: string, deviceId: string, keys: OneTimeKey[]): Promise<void> {
    // Same key ID and key: a re-upload, which must not make a used key look fresh.
    await this.sql.atomic(
      keys.map((k) => [
        `INSERT INTO e2e_fallback_keys (user_id, device_id, algorithm, key_id, key, used) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (user_id, device_id, algorithm) DO UPDATE SET key_id = excluded.key_id, key = excluded.key,
           used = CASE WHEN e2e_fallback_keys.key_id = excluded.key_id AND e2e_fallback_keys.key = excluded.key
                       THEN e2e_fallback_keys.used ELSE excluded.used END`,
        [userId, deviceId, k.algorithm, k.keyId, JSON.stringify(k.key), false],
      ]),
    );
  }

  async unusedFallbackKeyTypes(userId: string, deviceId: string): Promise<string[]> {
    const rows = await this.sql.all(
      "SELECT algorithm FROM e2e_fallback_keys WHERE user_id = ? AND device_id = ? AND NOT used ORDER BY algorithm",
      [userId, deviceId],
    );
    return rows.map((r) => r.algorithm);
  }

  async setCrossSigningKeys(
    userId: string,
    keys: Partial<Record<CrossSigningKeyType, Record<string, any>>>,
  ): Promise<void> {
    await this.sql.atomic(
      Object.entries(keys)
        .filter(([, key]) => key)
        .map(([type, key]) => [
          `INSERT INTO e2e_cross_signing_keys (user_id, key_type, key) VALUES (?, ?, ?)
           ON CONFLICT (user_id, key_type) DO UPDATE SET key = excluded.key`,
          [userId, type, JSON.stringify(key)],
        ]),
    );
  }

  async getCrossSigningKeys(userIds: string[]): Promise<CrossSigningKeyRow[]> {
    if (userIds.length === 0) return [];
    const rows = await this.sql.all(
      `SELECT * FROM e2e_cross_signing_keys WHERE ${this.sql.anyOf("user_id")} ORDER BY user_id, key_type`,
      [userIds],
    );
    return rows.map((r) => ({ userId: r.user_id, type: r.key_type, key: JSON.parse(r.key) }));
  }

  async addKeySignatures(rows: KeySignatureRow[]): Promise<void> {
    await this.sql.atomic(
      rows.map((s) => [
        `INSERT INTO e2e_signatures (target_user_id, target_key_id, signer_user_id, signer_key_id, signature)
         VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (target_user_id, target_key_id, signer_user_id, signer_key_id)
         DO UPDATE SET signature = excluded.signature`,
        [s.targetUserId, s.targetKeyId, s.signerUserId, s.signerKeyId, s.signature],
      ]),
    );
  }

  async getKeySignatures(targetUserIds: string[]): Promise<KeySignatureRow[]> {
    if (targetUserIds.length === 0) return [];
    const rows = await this.sql.all(
      `SELECT * FROM e2e_signatures WHERE ${this.sql.anyOf("target_user_id")} ORDER BY target_user_id, target_key_id`,
      [targetUserIds],
    );
    return rows.map((r) => ({
      targetUserId: r.target_user_id,
      targetKeyId: r.target_key_id,
      signerUserId: r.signer_user_id,
      signerKeyId: r.signer_key_id,
      signature: r.signature,
    }));
  }

  async getDeviceListChanges(after: number, upto: number): Promise<string[]> {
    const rows = await this.sql.all(
      "SELECT user_id FROM device_list_changes WHERE stream > ? AND stream <= ? ORDER BY user_id",
      [after, upto],
    );
    return rows.map((r) => r.user_id);
  }

  async deleteDeviceKeys(userId: string, deviceId: string): Promise<void> {
    const tables = ["e2e_device_keys", "e2e_one_time_keys", "e2e_fallback_keys", "to_device", "to_device_txns"];
    await this.sql.atomic([
      ...tables.map((t): [string, string[]] => [
        `DELETE FROM ${t} WHERE user_id = ? AND device_id = ?`,
        [userId, deviceId],
      ]),
      ["DELETE FROM e2e_signatures WHERE target_user_id = ? AND target_key_id = ?", [userId, deviceId]],
    ]);
  }

  async takeToDeviceMessages(
    userId: string,
    deviceId: string,
    ackedUpto: number,
    upto: number,
  ): Promise<ToDeviceRow[]> {
    if (ackedUpto > 0)
      await this.sql.run("DELETE FROM to_device WHERE user_id = ? AND device_id = ? AND stream <= ?", [
        userId,
        deviceId,
        ackedUpto,
      ]);
    const rows = await this.sql.all(
      `SELECT stream, sender, type, content FROM to_device WHERE user_id = ? AND device_id = ? AND stream <= ?
       ORDER BY stream, id`,
      [userId, deviceId, upto],
    );
    return rows.map((r) => ({
      stream: Number(r.stream),
      sender: r.sender,
      type: r.type,
      content: JSON.parse(r.content),
    }));
  }
}
