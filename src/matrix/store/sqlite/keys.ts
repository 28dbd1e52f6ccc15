/**
 * The KeyStore (end-to-end encryption) on SQLite. Every write is one BEGIN IMMEDIATE transaction. Server-side key
 * backup is its own area (key-backup.ts).
 */
import { AmiError } from "../../../core/errors.ts";
import { sameJson } from "../keys-rows.ts";
import type { ClaimedKey, DeviceRef, KeyClaim, KeyStore, OneTimeKey, ToDeviceMessage } from "../keys-types.ts";
import { SqlKeyStoreBase } from "../sql/keys.ts";
import { type SqliteDb, SqliteSql } from "./db.ts";

export class SqliteKeyStore extends SqlKeyStoreBase implements KeyStore {
  readonly #conn: () => SqliteDb;
  /** `conn` throws once the store is closed. */
  constructor(conn: () => SqliteDb) {
    super(new SqliteSql(conn));
    this.#conn = conn;
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
