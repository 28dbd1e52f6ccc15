/** DeviceListStore for both backends: remote users' cached device lists (device-lists-types.ts). */
import type { DeviceListStore, RemoteDeviceListRow } from "../device-lists-types.ts";
import type { Sql } from "../sql.ts";

function fromRow(r: any): RemoteDeviceListRow {
  const body = JSON.parse(r.body);
  return {
    userId: r.user_id,
    streamId: Number(r.stream_id),
    devices: body.devices ?? {},
    masterKey: body.masterKey ?? null,
    selfSigningKey: body.selfSigningKey ?? null,
    updatedTs: Number(r.updated_ts),
  };
}

const UPSERT = `INSERT INTO remote_device_lists (user_id, stream_id, body, updated_ts) VALUES (?, ?, ?, ?)
  ON CONFLICT (user_id) DO UPDATE SET stream_id = excluded.stream_id, body = excluded.body,
    updated_ts = excluded.updated_ts`;

export class SqlDeviceListStore implements DeviceListStore {
  readonly #sql: Sql;
  constructor(sql: Sql) {
    this.#sql = sql;
  }

  async getRemoteDeviceLists(userIds: string[]): Promise<RemoteDeviceListRow[]> {
    if (userIds.length === 0) return [];
    const rows = await this.#sql.all(
      `SELECT * FROM remote_device_lists WHERE ${this.#sql.anyOf("user_id")} ORDER BY user_id`,
      [userIds],
    );
    return rows.map(fromRow);
  }

  async putRemoteDeviceList(r: RemoteDeviceListRow): Promise<void> {
    const body = JSON.stringify({ devices: r.devices, masterKey: r.masterKey, selfSigningKey: r.selfSigningKey });
    await this.#sql.run(UPSERT, [r.userId, r.streamId, body, r.updatedTs]);
  }

  async deleteRemoteDeviceLists(userIds: string[]): Promise<void> {
    if (userIds.length === 0) return;
    await this.#sql.run(`DELETE FROM remote_device_lists WHERE ${this.#sql.anyOf("user_id")}`, [userIds]);
  }

  async getDeviceListStreams(userIds: string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (userIds.length === 0) return out;
    const rows = await this.#sql.all(
      `SELECT user_id, stream FROM device_list_outbound WHERE ${this.#sql.anyOf("user_id")}`,
      [userIds],
    );
    for (const r of rows) out.set(r.user_id, Number(r.stream));
    return out;
  }

  async setDeviceListStream(userId: string, stream: number): Promise<void> {
    await this.#sql.run(
      `INSERT INTO device_list_outbound (user_id, stream) VALUES (?, ?)
         ON CONFLICT (user_id) DO UPDATE SET stream = CASE WHEN excluded.stream > device_list_outbound.stream
           THEN excluded.stream ELSE device_list_outbound.stream END`,
      [userId, stream],
    );
  }
}
