/** AccountDataStore for both backends: account data and filters read alike in each. */
import { parseFilterId } from "../common.ts";
import { accountDataFromRow, NONE } from "../rows.ts";
import type { Sql } from "../sql.ts";
import type { AccountDataRow, AccountDataStore } from "../types.ts";

export class SqlAccountDataStore implements AccountDataStore {
  readonly #sql: Sql;
  constructor(sql: Sql) {
    this.#sql = sql;
  }

  async setAccountData(row: AccountDataRow): Promise<void> {
    await this.#sql.run(
      `INSERT INTO account_data (user_id, room_id, type, content, stream) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (user_id, room_id, type) DO UPDATE SET content = excluded.content, stream = excluded.stream`,
      [row.userId, row.roomId ?? NONE, row.type, JSON.stringify(row.content), row.stream],
    );
  }

  async getAccountData(userId: string, roomId: string | null, type: string): Promise<AccountDataRow | null> {
    const r = await this.#sql.get("SELECT * FROM account_data WHERE user_id = ? AND room_id = ? AND type = ?", [
      userId,
      roomId ?? NONE,
      type,
    ]);
    return r ? accountDataFromRow(r) : null;
  }

  async getAccountDataSince(userId: string, since: number): Promise<AccountDataRow[]> {
    const rows = await this.#sql.all("SELECT * FROM account_data WHERE user_id = ? AND stream > ? ORDER BY stream", [
      userId,
      since,
    ]);
    return rows.map(accountDataFromRow);
  }

  async getAccountDataOfUsers(userIds: string[], roomId: string | null, type: string): Promise<AccountDataRow[]> {
    if (userIds.length === 0) return [];
    const sql = this.#sql;
    const rows = await sql.all(
      `SELECT * FROM account_data WHERE ${sql.anyOf("user_id")} AND room_id = ? AND type = ? ORDER BY user_id`,
      [userIds, roomId ?? NONE, type],
    );
    return rows.map(accountDataFromRow);
  }

  async createFilter(userId: string, filter: Record<string, any>): Promise<string> {
    const r = await this.#sql.get("INSERT INTO filters (user_id, filter) VALUES (?, ?) RETURNING filter_id", [
      userId,
      JSON.stringify(filter),
    ]);
    return String(r.filter_id);
  }

  async getFilter(userId: string, filterId: string): Promise<Record<string, any> | null> {
    const id = parseFilterId(filterId);
    if (id === null) return null;
    const r = await this.#sql.get("SELECT filter FROM filters WHERE filter_id = ? AND user_id = ?", [id, userId]);
    return r ? JSON.parse(r.filter) : null;
  }
}
