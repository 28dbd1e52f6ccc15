/** ServerKeyStore for both backends: remote servers' signing keys (server-keys-types.ts). */
import type { ServerKeyRow, ServerKeyStore } from "../server-keys-types.ts";
import type { Sql } from "../sql.ts";

function fromRow(r: any): ServerKeyRow {
  return {
    serverName: r.server_name,
    keyId: r.key_id,
    publicKey: r.public_key,
    validUntilTs: Number(r.valid_until_ts),
    expiredTs: r.expired_ts === null ? null : Number(r.expired_ts),
    fetchedTs: Number(r.fetched_ts),
    responseJson: r.response_json,
  };
}

const UPSERT = `INSERT INTO server_keys (server_name, key_id, public_key, valid_until_ts, expired_ts, fetched_ts, response_json)
  VALUES (?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (server_name, key_id) DO UPDATE SET public_key = excluded.public_key,
    valid_until_ts = excluded.valid_until_ts, expired_ts = excluded.expired_ts, fetched_ts = excluded.fetched_ts,
    response_json = excluded.response_json`;

export class SqlServerKeyStore implements ServerKeyStore {
  readonly #sql: Sql;
  constructor(sql: Sql) {
    this.#sql = sql;
  }

  async putServerKeys(rows: ServerKeyRow[]): Promise<void> {
    if (rows.length === 0) return;
    await this.#sql.atomic(
      rows.map((r) => [
        UPSERT,
        [r.serverName, r.keyId, r.publicKey, r.validUntilTs, r.expiredTs, r.fetchedTs, r.responseJson],
      ]),
    );
  }

  async getServerKeys(serverName: string, keyIds?: readonly string[]): Promise<ServerKeyRow[]> {
    const rows = keyIds
      ? await this.#sql.all(
          `SELECT * FROM server_keys WHERE server_name = ? AND ${this.#sql.anyOf("key_id")} ORDER BY key_id`,
          [serverName, keyIds],
        )
      : await this.#sql.all("SELECT * FROM server_keys WHERE server_name = ? ORDER BY key_id", [serverName]);
    return rows.map(fromRow);
  }
}
