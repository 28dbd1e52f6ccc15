/** EphemeralStore for both backends: read receipts and presence read alike in each. */
import { NONE, presenceFromRow, receiptFromRow } from "../rows.ts";
import type { Sql } from "../sql.ts";
import type { EphemeralStore, PresenceRow, ReceiptRow } from "../types.ts";

export class SqlEphemeralStore implements EphemeralStore {
  readonly #sql: Sql;
  constructor(sql: Sql) {
    this.#sql = sql;
  }

  async setReceipt(row: ReceiptRow): Promise<void> {
    await this.#sql.run(
      `INSERT INTO receipts (room_id, user_id, type, thread_id, event_id, ts, stream) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (room_id, user_id, type, thread_id) DO UPDATE SET event_id = excluded.event_id, ts = excluded.ts,
         stream = excluded.stream`,
      [row.roomId, row.userId, row.type, row.threadId ?? NONE, row.eventId, row.ts, row.stream],
    );
  }

  async getReceiptsSince(roomIds: string[], since: number): Promise<ReceiptRow[]> {
    if (roomIds.length === 0) return [];
    const sql = this.#sql;
    const rows = await sql.all(`SELECT * FROM receipts WHERE ${sql.anyOf("room_id")} AND stream > ? ORDER BY stream`, [
      roomIds,
      since,
    ]);
    return rows.map(receiptFromRow);
  }

  async getReceipt(roomId: string, userId: string, type: string, threadId: string | null): Promise<ReceiptRow | null> {
    const r = await this.#sql.get(
      "SELECT * FROM receipts WHERE room_id = ? AND user_id = ? AND type = ? AND thread_id = ?",
      [roomId, userId, type, threadId ?? NONE],
    );
    return r ? receiptFromRow(r) : null;
  }

  async getUserReceipts(userId: string, roomIds: string[]): Promise<ReceiptRow[]> {
    if (roomIds.length === 0) return [];
    const sql = this.#sql;
    const rows = await sql.all(
      `SELECT * FROM receipts WHERE user_id = ? AND ${sql.anyOf("room_id")} ORDER BY room_id, stream`,
      [userId, roomIds],
    );
    return rows.map(receiptFromRow);
  }

  async getReceiptsOfUsers(userIds: string[], roomIds: string[]): Promise<ReceiptRow[]> {
    if (userIds.length === 0 || roomIds.length === 0) return [];
    const sql = this.#sql;
    const rows = await sql.all(
      `SELECT * FROM receipts WHERE ${sql.anyOf("user_id")} AND ${sql.anyOf("room_id")}
       ORDER BY user_id, room_id, stream`,
      [userIds, roomIds],
    );
    return rows.map(receiptFromRow);
  }

  async setPresence(row: PresenceRow): Promise<void> {
    await this.#sql.run(
      `INSERT INTO presence (user_id, presence, status_msg, last_active_ts, stream) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (user_id) DO UPDATE SET presence = excluded.presence, status_msg = excluded.status_msg,
         last_active_ts = excluded.last_active_ts, stream = excluded.stream`,
      [row.userId, row.presence, row.statusMsg, row.lastActiveTs, row.stream],
    );
  }

  async getPresence(userId: string): Promise<PresenceRow | null> {
    const r = await this.#sql.get("SELECT * FROM presence WHERE user_id = ?", [userId]);
    return r ? presenceFromRow(r) : null;
  }

  async getPresenceSince(userIds: string[], since: number): Promise<PresenceRow[]> {
    if (userIds.length === 0) return [];
    const sql = this.#sql;
    const rows = await sql.all(`SELECT * FROM presence WHERE ${sql.anyOf("user_id")} AND stream > ? ORDER BY stream`, [
      userIds,
      since,
    ]);
    return rows.map(presenceFromRow);
  }
}
