/**
 * The EventStore reads that both dialects write alike; each backend's EventStore extends this with its persist
 * path, its filtered timeline reads and its batched reads (sqlite/events.ts, postgres/events.ts).
 */
import { EVENT_COLUMNS, eventFromRow, MEMBER_COLUMNS, membershipFromRow } from "../rows.ts";
import type { Sql, SqlParam } from "../sql.ts";
import type { MembershipRow, StoredEvent, TimestampQuery } from "../types.ts";

/** The condition (on alias e) that keeps state-only events (NewEvent.stateOnly) out of timeline reads. */
export const TIMELINE = "e.state_only = 0";

const one = (row: unknown): StoredEvent | null => (row ? eventFromRow(row) : null);

export class SqlEventReads {
  protected readonly sql: Sql;
  constructor(sql: Sql) {
    this.sql = sql;
  }

  async getEvent(eventId: string): Promise<StoredEvent | null> {
    return one(await this.sql.get(`SELECT ${EVENT_COLUMNS} FROM events e WHERE e.event_id = ?`, [eventId]));
  }

  async getEvents(eventIds: string[]): Promise<StoredEvent[]> {
    if (eventIds.length === 0) return [];
    const rows = await this.sql.all(
      `SELECT ${EVENT_COLUMNS} FROM events e WHERE ${this.sql.anyOf("e.event_id")} ORDER BY e.stream`,
      [eventIds],
    );
    return rows.map(eventFromRow);
  }

  async getTxnEvent(userId: string, deviceId: string, scope: string, txnId: string): Promise<string | null> {
    const r = await this.sql.get(
      "SELECT event_id FROM event_txns WHERE user_id = ? AND device_id = ? AND scope = ? AND txn_id = ?",
      [userId, deviceId, scope, txnId],
    );
    return r ? r.event_id : null;
  }

  async getEventNearTimestamp(q: TimestampQuery): Promise<StoredEvent | null> {
    const [cmp, order] = q.dir === "f" ? [">=", "ASC"] : ["<=", "DESC"];
    return one(
      await this.sql.get(
        `SELECT ${EVENT_COLUMNS} FROM events e
         WHERE e.room_id = ? AND e.origin_server_ts ${cmp} ? AND e.stream >= ? AND e.stream <= ? AND ${TIMELINE}
         ORDER BY e.origin_server_ts ${order}, e.stream ${order} LIMIT 1`,
        [q.roomId, q.ts, q.lo, q.hi],
      ),
    );
  }

  async getLatestEvent(roomId: string): Promise<StoredEvent | null> {
    return one(
      await this.sql.get(
        `SELECT ${EVENT_COLUMNS} FROM events e WHERE e.room_id = ? AND ${TIMELINE} ORDER BY e.stream DESC LIMIT 1`,
        [roomId],
      ),
    );
  }

  async getCurrentState(roomId: string): Promise<StoredEvent[]> {
    const rows = await this.sql.all(
      `SELECT ${EVENT_COLUMNS} FROM current_state c JOIN events e ON e.stream = c.stream
       WHERE c.room_id = ? ORDER BY e.stream`,
      [roomId],
    );
    return rows.map(eventFromRow);
  }

  async getCurrentStateEvent(roomId: string, type: string, stateKey: string): Promise<StoredEvent | null> {
    return one(
      await this.sql.get(
        `SELECT ${EVENT_COLUMNS} FROM current_state c JOIN events e ON e.stream = c.stream
         WHERE c.room_id = ? AND c.type = ? AND c.state_key = ?`,
        [roomId, type, stateKey],
      ),
    );
  }

  async getStateAt(roomId: string, stream: number, types?: string[]): Promise<StoredEvent[]> {
    if (types && types.length === 0) return [];
    // max() with GROUP BY walks the (room_id, type, state_key, stream) key in order: one covering index range.
    const sql = `SELECT ${EVENT_COLUMNS} FROM events e WHERE e.stream IN (
        SELECT max(h.stream) FROM state_history h WHERE h.room_id = ? AND h.stream <= ?
        ${types ? `AND ${this.sql.anyOf("h.type")}` : ""} GROUP BY h.type, h.state_key)
      ORDER BY e.stream`;
    const params: SqlParam[] = [roomId, stream];
    if (types) params.push(types);
    return (await this.sql.all(sql, params)).map(eventFromRow);
  }

  async getMembership(roomId: string, userId: string): Promise<MembershipRow | null> {
    const r = await this.sql.get(`SELECT ${MEMBER_COLUMNS} FROM memberships WHERE room_id = ? AND user_id = ?`, [
      roomId,
      userId,
    ]);
    return r ? membershipFromRow(r) : null;
  }

  async getRoomsForUser(userId: string): Promise<MembershipRow[]> {
    const rows = await this.sql.all(`SELECT ${MEMBER_COLUMNS} FROM memberships WHERE user_id = ? ORDER BY room_id`, [
      userId,
    ]);
    return rows.map(membershipFromRow);
  }

  async sharesRoomWithServer(userId: string, server: string): Promise<boolean> {
    const pattern = `%:${server.replace(/[\\%_]/g, (c) => `\\${c}`)}`;
    const rows = await this.sql.all(
      `SELECT 1 AS one FROM memberships a JOIN memberships b ON b.room_id = a.room_id
       WHERE a.user_id = ? AND a.membership = 'join' AND b.membership = 'join' AND b.user_id <> a.user_id
         AND b.user_id LIKE ? ESCAPE '\\' LIMIT 1`,
      [userId, pattern],
    );
    return rows.length > 0;
  }

  async getMembers(roomId: string, membership?: string): Promise<MembershipRow[]> {
    const rows =
      membership === undefined
        ? await this.sql.all(`SELECT ${MEMBER_COLUMNS} FROM memberships WHERE room_id = ? ORDER BY user_id`, [roomId])
        : await this.sql.all(
            `SELECT ${MEMBER_COLUMNS} FROM memberships WHERE room_id = ? AND membership = ? ORDER BY user_id`,
            [roomId, membership],
          );
    return rows.map(membershipFromRow);
  }

  async getMembersOfRooms(roomIds: string[]): Promise<Map<string, MembershipRow[]>> {
    const out = new Map<string, MembershipRow[]>(roomIds.map((id) => [id, []]));
    if (roomIds.length === 0) return out;
    const rows = await this.sql.all(
      `SELECT ${MEMBER_COLUMNS} FROM memberships WHERE ${this.sql.anyOf("room_id")} ORDER BY room_id, user_id`,
      [roomIds],
    );
    for (const r of rows) out.get(r.room_id)?.push(membershipFromRow(r));
    return out;
  }
}
