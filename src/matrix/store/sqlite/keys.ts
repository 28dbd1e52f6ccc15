/**
 * The KeyStore (end-to-end encryption) on SQLite. Every write is one BEGIN IMMEDIATE transaction. Server-side key
 * backup is its own area (key-backup.ts).
 */
import { AmiError } from "../../../core/errors.ts";
import { sameJson } from "../keys-rows.ts";
import type {
  ClaimedKey,
  CrossSigningKeyRow,
  CrossSigningKeyType,
  DeviceRef,
  KeyClaim,
  KeySignatureRow,
  KeyStore,
  OneTimeKey,
  ToDeviceMessage,
  ToDeviceRow,
} from "../keys-types.ts";
import type { SqliteDb } from "./db.ts";

const IN_JSON = "(SELECT value FROM json_each(?))";

export class SqliteKeyStore implements KeyStore {
  readonly #conn: () => SqliteDb;
  /** `conn` throws once the store is closed. */
  constructor(conn: () => SqliteDb) {
    this.#conn = conn;
  }

  async setDeviceKeys(userId: string, deviceId: string, keys: Record<string, any>): Promise<void> {
    const d = this.#conn();
    d.run(
      `INSERT INTO e2e_device_keys (user_id, device_id, keys) VALUES (?, ?, ?)
         ON CONFLICT (user_id, device_id) DO UPDATE SET keys = excluded.keys`,
      userId,
      deviceId,
      JSON.stringify(keys),
    );
  }

  async getDeviceKeys(userIds: string[]) {
    const d = this.#conn();
    if (userIds.length === 0) return [];
    return d
      .q(
        `SELECT k.user_id, k.device_id, k.keys FROM e2e_device_keys k
           JOIN devices v ON v.user_id = k.user_id AND v.device_id = k.device_id
         WHERE k.user_id IN ${IN_JSON} ORDER BY k.user_id, k.device_id`,
      )
      .all(JSON.stringify(userIds))
      .map((r: any) => ({ userId: r.user_id, deviceId: r.device_id, keys: JSON.parse(r.keys) }));
  }

  async addOneTimeKeys(userId: string, deviceId: string, keys: OneTimeKey[]): Promise<void> {
    const d = this.#conn();
    d.tx(() => {
      for (const k of keys) {
        const old = d
          .q("SELECT key FROM e2e_one_time_keys WHERE user_id = ? AND device_id = ? AND algorithm = ? AND key_id = ?")
          .get(userId, deviceId, k.algorithm, k.keyId) as any;
        if (old) {
          if (!sameJson(JSON.parse(old.key), k.key))
            throw new AmiError("M_INVALID_PARAM", `One-time key ${k.keyId} already exists with a different key`);
          continue;
        }
        d.run(
          "INSERT INTO e2e_one_time_keys (user_id, device_id, algorithm, key_id, key) VALUES (?, ?, ?, ?, ?)",
          userId,
          deviceId,
          k.algorithm,
          k.keyId,
          JSON.stringify(k.key),
        );
      }
    });
  }

  async countOneTimeKeys(userId: string, deviceId: string): Promise<Record<string, number>> {
    const d = this.#conn();
    const out: Record<string, number> = {};
    for (const r of d
      .q(
        "SELECT algorithm, count(*) AS n FROM e2e_one_time_keys WHERE user_id = ? AND device_id = ? GROUP BY algorithm",
      )
      .all(userId, deviceId) as any[])
      out[r.algorithm] = Number(r.n);
    return out;
  }

  async setFallbackKeys(userId: string, deviceId: string, keys: OneTimeKey[]): Promise<void> {
    const d = this.#conn();
    d.tx(() => {
      for (const k of keys) {
        const key = JSON.stringify(k.key);
        // Same key ID and key: a re-upload, which must not make a used key look fresh.
        d.run(
          `INSERT INTO e2e_fallback_keys (user_id, device_id, algorithm, key_id, key, used) VALUES (?, ?, ?, ?, ?, 0)
             ON CONFLICT (user_id, device_id, algorithm) DO UPDATE SET key_id = excluded.key_id, key = excluded.key,
               used = CASE WHEN key_id = excluded.key_id AND key = excluded.key THEN used ELSE 0 END`,
          userId,
          deviceId,
          k.algorithm,
          k.keyId,
          key,
        );
      }
    });
  }

  async unusedFallbackKeyTypes(userId: string, deviceId: string): Promise<string[]> {
    const d = this.#conn();
    return d
      .q("SELECT algorithm FROM e2e_fallback_keys WHERE user_id = ? AND device_id = ? AND used = 0 ORDER BY algorithm")
      .all(userId, deviceId)
      .map((r: any) => r.algorithm);
  }

  /** countOneTimeKeys of each device, in input order: one statement (json_each's key is the input's index). */
  async countOneTimeKeysMany(devices: DeviceRef[]): Promise<Record<string, number>[]> {
    const d = this.#conn();
    const out = devices.map((): Record<string, number> => ({}));
    if (devices.length === 0) return out;
    for (const r of d
      .q(
        `SELECT j.key AS idx, k.algorithm, count(*) AS n FROM json_each(?) j JOIN e2e_one_time_keys k
           ON k.user_id = json_extract(j.value, '$[0]') AND k.device_id = json_extract(j.value, '$[1]')
         GROUP BY j.key, k.algorithm`,
      )
      .all(JSON.stringify(devices.map((x) => [x.userId, x.deviceId]))) as any[])
      out[Number(r.idx)][r.algorithm] = Number(r.n);
    return out;
  }

  /** unusedFallbackKeyTypes of each device, in input order. */
  async unusedFallbackKeyTypesMany(devices: DeviceRef[]): Promise<string[][]> {
    const d = this.#conn();
    const out = devices.map((): string[] => []);
    if (devices.length === 0) return out;
    for (const r of d
      .q(
        `SELECT j.key AS idx, k.algorithm FROM json_each(?) j JOIN e2e_fallback_keys k
           ON k.user_id = json_extract(j.value, '$[0]') AND k.device_id = json_extract(j.value, '$[1]')
         WHERE k.used = 0 ORDER BY j.key, k.algorithm`,
      )
      .all(JSON.stringify(devices.map((x) => [x.userId, x.deviceId]))) as any[])
      out[Number(r.idx)].push(r.algorithm);
    return out;
  }

  async claimKeys(claims: KeyClaim[]): Promise<ClaimedKey[]> {
    const d = this.#conn();
    // BEGIN IMMEDIATE holds the write lock for the whole claim: no other connection can take the same key.
    return d.tx(() => {
      const out: ClaimedKey[] = [];
      for (const c of claims) {
        const otk = d
          .q(
            `DELETE FROM e2e_one_time_keys WHERE user_id = ?1 AND device_id = ?2 AND algorithm = ?3 AND key_id = (
               SELECT key_id FROM e2e_one_time_keys WHERE user_id = ?1 AND device_id = ?2 AND algorithm = ?3
               ORDER BY key_id LIMIT 1)
             RETURNING key_id, key`,
          )
          .get(c.userId, c.deviceId, c.algorithm) as any;
        const row =
          otk ??
          (d
            .q(
              `UPDATE e2e_fallback_keys SET used = 1 WHERE user_id = ? AND device_id = ? AND algorithm = ?
               RETURNING key_id, key`,
            )
            .get(c.userId, c.deviceId, c.algorithm) as any);
        if (row) out.push({ userId: c.userId, deviceId: c.deviceId, keyId: row.key_id, key: JSON.parse(row.key) });
      }
      return out;
    });
  }

  async setCrossSigningKeys(
    userId: string,
    keys: Partial<Record<CrossSigningKeyType, Record<string, any>>>,
  ): Promise<void> {
    const d = this.#conn();
    d.tx(() => {
      for (const [type, key] of Object.entries(keys)) {
        if (!key) continue;
        d.run(
          `INSERT INTO e2e_cross_signing_keys (user_id, key_type, key) VALUES (?, ?, ?)
             ON CONFLICT (user_id, key_type) DO UPDATE SET key = excluded.key`,
          userId,
          type,
          JSON.stringify(key),
        );
      }
    });
  }

  async getCrossSigningKeys(userIds: string[]): Promise<CrossSigningKeyRow[]> {
    const d = this.#conn();
    if (userIds.length === 0) return [];
    return d
      .q(`SELECT * FROM e2e_cross_signing_keys WHERE user_id IN ${IN_JSON} ORDER BY user_id, key_type`)
      .all(JSON.stringify(userIds))
      .map((r: any) => ({ userId: r.user_id, type: r.key_type, key: JSON.parse(r.key) }));
  }

  async addKeySignatures(rows: KeySignatureRow[]): Promise<void> {
    const d = this.#conn();
    d.tx(() => {
      for (const s of rows)
        d.run(
          `INSERT INTO e2e_signatures (target_user_id, target_key_id, signer_user_id, signer_key_id, signature)
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (target_user_id, target_key_id, signer_user_id, signer_key_id)
             DO UPDATE SET signature = excluded.signature`,
          s.targetUserId,
          s.targetKeyId,
          s.signerUserId,
          s.signerKeyId,
          s.signature,
        );
    });
  }

  async getKeySignatures(targetUserIds: string[]): Promise<KeySignatureRow[]> {
    const d = this.#conn();
    if (targetUserIds.length === 0) return [];
    return d
      .q(`SELECT * FROM e2e_signatures WHERE target_user_id IN ${IN_JSON} ORDER BY target_user_id, target_key_id`)
      .all(JSON.stringify(targetUserIds))
      .map((r: any) => ({
        targetUserId: r.target_user_id,
        targetKeyId: r.target_key_id,
        signerUserId: r.signer_user_id,
        signerKeyId: r.signer_key_id,
        signature: r.signature,
      }));
  }

  async markDeviceListsChanged(userIds: string[], stream: number): Promise<void> {
    const d = this.#conn();
    d.tx(() => {
      for (const u of new Set(userIds))
        d.run(
          `INSERT INTO device_list_changes (user_id, stream) VALUES (?, ?)
             ON CONFLICT (user_id) DO UPDATE SET stream = max(stream, excluded.stream)`,
          u,
          stream,
        );
    });
  }

  async getDeviceListChanges(after: number, upto: number): Promise<string[]> {
    const d = this.#conn();
    return d
      .q("SELECT user_id FROM device_list_changes WHERE stream > ? AND stream <= ? ORDER BY user_id")
      .all(after, upto)
      .map((r: any) => r.user_id);
  }

  async deleteDeviceKeys(userId: string, deviceId: string): Promise<void> {
    const d = this.#conn();
    d.tx(() => {
      for (const table of ["e2e_device_keys", "e2e_one_time_keys", "e2e_fallback_keys", "to_device", "to_device_txns"])
        d.run(`DELETE FROM ${table} WHERE user_id = ? AND device_id = ?`, userId, deviceId);
      d.run("DELETE FROM e2e_signatures WHERE target_user_id = ? AND target_key_id = ?", userId, deviceId);
    });
  }

  async addToDeviceMessages(
    sender: { userId: string; deviceId: string; txnId: string },
    messages: ToDeviceMessage[],
    stream: number,
  ): Promise<boolean> {
    const d = this.#conn();
    return d.tx(() => {
      const t = d.run(
        "INSERT INTO to_device_txns (user_id, device_id, txn_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        sender.userId,
        sender.deviceId,
        sender.txnId,
      );
      if (Number(t.changes) === 0) return false;
      for (const m of messages) {
        // Only devices that exist get a copy: an unknown device (or user) is skipped, not an error.
        d.run(
          `INSERT INTO to_device (user_id, device_id, stream, sender, type, content)
             SELECT user_id, device_id, ?, ?, ?, ? FROM devices WHERE user_id = ? AND (? = '*' OR device_id = ?)`,
          stream,
          sender.userId,
          m.type,
          JSON.stringify(m.content),
          m.userId,
          m.deviceId,
          m.deviceId,
        );
      }
      d.run(
        `INSERT INTO e2e_stream_mark (id, stream) VALUES (1, ?)
           ON CONFLICT (id) DO UPDATE SET stream = max(stream, excluded.stream)`,
        stream,
      );
      return true;
    });
  }

  async takeToDeviceMessages(
    userId: string,
    deviceId: string,
    ackedUpto: number,
    upto: number,
  ): Promise<ToDeviceRow[]> {
    const d = this.#conn();
    if (ackedUpto > 0)
      d.run("DELETE FROM to_device WHERE user_id = ? AND device_id = ? AND stream <= ?", userId, deviceId, ackedUpto);
    return d
      .q(
        `SELECT stream, sender, type, content FROM to_device WHERE user_id = ? AND device_id = ? AND stream <= ?
         ORDER BY stream, id`,
      )
      .all(userId, deviceId, upto)
      .map((r: any) => ({ stream: Number(r.stream), sender: r.sender, type: r.type, content: JSON.parse(r.content) }));
  }

  async getMaxKeyStream(): Promise<number> {
    const d = this.#conn();
    const r = d
      .q(
        `SELECT max(
           coalesce((SELECT max(stream) FROM to_device), 0),
           coalesce((SELECT max(stream) FROM e2e_stream_mark), 0),
           coalesce((SELECT max(stream) FROM device_list_changes), 0)) AS m`,
      )
      .get() as any;
    return Number(r.m);
  }
}
