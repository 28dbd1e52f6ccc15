/**
 * The user directory for both backends (SearchStore.searchUsers): the same SQL in each but for one expression, the
 * join rule read out of an m.room.join_rules PDU (JSON text), which the dialect's search area passes in.
 */
import { likeLiteral } from "../common.ts";
import { userFromRow } from "../rows.ts";
import type { Sql, SqlParam } from "../sql.ts";
import type { UserRow, UserSearchQuery } from "../types.ts";

export class SqlUserDirectory {
  readonly #sql: Sql;
  readonly #joinRule: string;
  /** `joinRule`: SQL reading content.join_rule of the PDU text in column `j.pdu`. */
  constructor(sql: Sql, joinRule: string) {
    this.#sql = sql;
    this.#joinRule = joinRule;
  }

  async searchUsers(q: UserSearchQuery): Promise<UserRow[]> {
    if (q.words.length === 0 || q.limit <= 0) return [];
    const where = ["u.deactivated = ?"];
    const params: SqlParam[] = [false];
    // A word matches the start of the localpart or of a word of the display name (as Synapse's prefix search).
    for (const w of q.words) {
      const lit = likeLiteral(w);
      where.push(
        `(lower(u.user_id) LIKE ? ESCAPE '\\' OR lower(coalesce(u.displayname, '')) LIKE ? ESCAPE '\\'
          OR lower(coalesce(u.displayname, '')) LIKE ? ESCAPE '\\')`,
      );
      params.push(`@${lit}%`, `${lit}%`, `% ${lit}%`);
    }
    if (!q.all) {
      where.push(`(EXISTS (
          SELECT 1 FROM memberships m JOIN memberships me ON me.room_id = m.room_id
          WHERE m.user_id = u.user_id AND m.membership = 'join' AND me.user_id = ? AND me.membership = 'join')
        OR EXISTS (
          SELECT 1 FROM memberships m
          JOIN current_state cs ON cs.room_id = m.room_id AND cs.type = 'm.room.join_rules' AND cs.state_key = ''
          JOIN events j ON j.event_id = cs.event_id
          WHERE m.user_id = u.user_id AND m.membership = 'join' AND ${this.#joinRule} = 'public'))`);
      params.push(q.requester);
    }
    params.push(q.limit);
    const rows = await this.#sql.all(
      `SELECT u.* FROM users u WHERE ${where.join(" AND ")} ORDER BY u.user_id LIMIT ?`,
      params,
    );
    return rows.map(userFromRow);
  }
}
