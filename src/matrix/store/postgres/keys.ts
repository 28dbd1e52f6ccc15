/**
 * The KeyStore (end-to-end encryption) on PostgreSQL. Every write is one statement or one BEGIN..COMMIT. Server-side
 * key backup is its own area (key-backup.ts).
 */
import { AmiError } from "../../../core/errors.ts";
import { sameJson } from "../keys-rows.ts";
import type { ClaimedKey, DeviceRef, KeyClaim, KeyStore, OneTimeKey, ToDeviceMessage } from "../keys-types.ts";
import { SqlKeyStoreBase } from "../sql/keys.ts";
import { type PgDb, PgSql } from "./db.ts";

export class PostgresKeyStore extends SqlKeyStoreBase implements KeyStore {
  readonly #conn: () => PgDb;
  /** `conn` throws once the store is closed. */
  constructor(conn: () => PgDb) {
    super(new PgSql(conn));
    this.#conn = conn;
  }

  async addOneTimeKeys(userId: string, deviceId: string, keys: OneTimeKey[]): Promise<void> {
    const d = this.#conn();
    await d.tx(async (c) => {
      for (const k of keys) {
        // DO NOTHING + RETURNING: a row back means it was new; otherwise compare with the one already there.
        const ins = await d.query(
          `INSERT INTO e2e_one_time_keys (user_id, device_id, algorithm, key_id, key) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT DO NOTHING RETURNING 1`,
          [userId, deviceId, k.algorithm, k.keyId, JSON.stringify(k.key)],
          c,
        );
        if (ins.rowCount) continue;
        const old = await d.query(
          "SELECT key FROM e2e_one_time_keys WHERE user_id = $1 AND device_id = $2 AND algorithm = $3 AND key_id = $4",
          [userId, deviceId, k.algorithm, k.keyId],
          c,
        );
        // Gone again: claimed between the two statements; the upload of a claimed key ID is refused below too.
        if (!old.rows[0] || !sameJson(JSON.parse(old.rows[0].key), k.key))
          throw new AmiError("M_INVALID_PARAM", `One-time key ${k.keyId} already exists with a different key`);
      }
    });
  }

  /** countOneTimeKeys of each device, in input order: one round trip (unnest WITH ORDINALITY gives the index). */
  async countOneTimeKeysMany(devices: DeviceRef[]): Promise<Record<string, number>[]> {
    const d = this.#conn();
    const out = devices.map((): Record<string, number> => ({}));
    if (devices.length === 0) return out;
    const rows = await d.rows(
      `SELECT t.idx, k.algorithm, count(*) AS n
         FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(user_id, device_id, idx)
         JOIN e2e_one_time_keys k ON k.user_id = t.user_id AND k.device_id = t.device_id
       GROUP BY t.idx, k.algorithm`,
      [devices.map((x) => x.userId), devices.map((x) => x.deviceId)],
    );
    for (const r of rows) out[Number(r.idx) - 1][r.algorithm] = Number(r.n);
    return out;
  }

  /** unusedFallbackKeyTypes of each device, in input order. */
  async unusedFallbackKeyTypesMany(devices: DeviceRef[]): Promise<string[][]> {
    const d = this.#conn();
    const out = devices.map((): string[] => []);
    if (devices.length === 0) return out;
    const rows = await d.rows(
      `SELECT t.idx, k.algorithm
         FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(user_id, device_id, idx)
         JOIN e2e_fallback_keys k ON k.user_id = t.user_id AND k.device_id = t.device_id
       WHERE NOT k.used ORDER BY t.idx, k.algorithm`,
      [devices.map((x) => x.userId), devices.map((x) => x.deviceId)],
    );
    for (const r of rows) out[Number(r.idx) - 1].push(r.algorithm);
    return out;
  }

  async claimKeys(claims: KeyClaim[]): Promise<ClaimedKey[]> {
    const d = this.#conn();
    if (claims.length === 0) return [];
    return d.tx(async (c) => {
      const out: ClaimedKey[] = [];
      for (const cl of claims) {
        // FOR UPDATE SKIP LOCKED: a concurrent claim that locked the first key makes this one take the next,
        // so two claims never get the same key (and never come back empty while keys remain).
        const otk = await d.query(
          `DELETE FROM e2e_one_time_keys WHERE (user_id, device_id, algorithm, key_id) = (
             SELECT user_id, device_id, algorithm, key_id FROM e2e_one_time_keys
             WHERE user_id = $1 AND device_id = $2 AND algorithm = $3 ORDER BY key_id LIMIT 1 FOR UPDATE SKIP LOCKED)
           RETURNING key_id, key`,
          [cl.userId, cl.deviceId, cl.algorithm],
          c,
        );
        let row = otk.rows[0];
        if (!row) {
          const fb = await d.query(
            `UPDATE e2e_fallback_keys SET used = true WHERE user_id = $1 AND device_id = $2 AND algorithm = $3
             RETURNING key_id, key`,
            [cl.userId, cl.deviceId, cl.algorithm],
            c,
          );
          row = fb.rows[0];
        }
        if (row) out.push({ userId: cl.userId, deviceId: cl.deviceId, keyId: row.key_id, key: JSON.parse(row.key) });
      }
      return out;
    });
  }

  async markDeviceListsChanged(userIds: string[], stream: number): Promise<void> {
    const d = this.#conn();
    if (userIds.length === 0) return;
    await d.query(
      `INSERT INTO device_list_changes (user_id, stream) SELECT DISTINCT u, $2::bigint FROM unnest($1::text[]) u
         ON CONFLICT (user_id) DO UPDATE SET stream = GREATEST(device_list_changes.stream, excluded.stream)`,
      [userIds, stream],
    );
  }

  async addToDeviceMessages(
    sender: { userId: string; deviceId: string; txnId: string },
    messages: ToDeviceMessage[],
    stream: number,
  ): Promise<boolean> {
    const d = this.#conn();
    return d.tx(async (c) => {
      const t = await d.query(
        "INSERT INTO to_device_txns (user_id, device_id, txn_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        [sender.userId, sender.deviceId, sender.txnId],
        c,
      );
      if (!t.rowCount) return false;
      for (const m of messages)
        await d.query(
          `INSERT INTO to_device (user_id, device_id, stream, sender, type, content)
             SELECT user_id, device_id, $1::bigint, $2::text, $3::text, $4::text FROM devices
             WHERE user_id = $5 AND ($6::text = '*' OR device_id = $6)`,
          [stream, sender.userId, m.type, JSON.stringify(m.content), m.userId, m.deviceId],
          c,
        );
      await d.query(
        `INSERT INTO e2e_stream_mark (id, stream) VALUES (1, $1)
           ON CONFLICT (id) DO UPDATE SET stream = GREATEST(e2e_stream_mark.stream, excluded.stream)`,
        [stream],
        c,
      );
      return true;
    });
  }

  async getMaxKeyStream(): Promise<number> {
    const d = this.#conn();
    const r = await d.row(
      `SELECT GREATEST(
         coalesce((SELECT max(stream) FROM to_device), 0),
         coalesce((SELECT max(stream) FROM e2e_stream_mark), 0),
         coalesce((SELECT max(stream) FROM device_list_changes), 0)) AS m`,
    );
    return Number(r.m);
  }
}
