/** RoomStore for both backends: room rows and aliases read alike in each. */
import { AmiError } from "../../../core/errors.ts";
import { roomFromRow } from "../rows.ts";
import type { Sql } from "../sql.ts";
import type { PartialStateRow, RoomRow, RoomStore } from "../types.ts";

export class SqlRoomStore implements RoomStore {
  readonly #sql: Sql;
  constructor(sql: Sql) {
    this.#sql = sql;
  }

  async createRoom(r: RoomRow): Promise<void> {
    try {
      await this.#sql.run(
        "INSERT INTO rooms (room_id, version, creator, created_ts, is_public) VALUES (?, ?, ?, ?, ?)",
        [r.roomId, r.version, r.creator, r.createdTs, r.isPublic],
      );
    } catch (e) {
      if (this.#sql.isUniqueViolation(e)) throw new AmiError("M_ROOM_IN_USE", "Room ID already exists.");
      throw e;
    }
  }

  async getRoom(roomId: string): Promise<RoomRow | null> {
    const r = await this.#sql.get("SELECT * FROM rooms WHERE room_id = ?", [roomId]);
    return r ? roomFromRow(r) : null;
  }

  async setRoomPublic(roomId: string, isPublic: boolean): Promise<void> {
    await this.#sql.run("UPDATE rooms SET is_public = ? WHERE room_id = ?", [isPublic, roomId]);
  }

  async listPublicRoomIds(): Promise<string[]> {
    const rows = await this.#sql.all("SELECT room_id FROM rooms WHERE is_public ORDER BY room_id");
    return rows.map((r) => r.room_id);
  }

  async listRooms(opts: { from?: string; limit: number }): Promise<RoomRow[]> {
    const rows = await this.#sql.all("SELECT * FROM rooms WHERE room_id > ? ORDER BY room_id LIMIT ?", [
      opts.from ?? "",
      Math.max(0, opts.limit),
    ]);
    return rows.map(roomFromRow);
  }

  async countRooms(): Promise<number> {
    return Number((await this.#sql.get("SELECT count(*) AS n FROM rooms")).n);
  }

  async setRoomBlocked(roomId: string, by: string | null): Promise<void> {
    if (by === null) await this.#sql.run("DELETE FROM blocked_rooms WHERE room_id = ?", [roomId]);
    else
      await this.#sql.run(
        "INSERT INTO blocked_rooms (room_id, user_id) VALUES (?, ?) ON CONFLICT (room_id) DO UPDATE SET user_id = excluded.user_id",
        [roomId, by],
      );
  }

  async getRoomBlock(roomId: string): Promise<string | null> {
    return (await this.#sql.get("SELECT user_id FROM blocked_rooms WHERE room_id = ?", [roomId]))?.user_id ?? null;
  }

  async setPartialState(roomId: string, p: { joinEventId: string; servers: string[] }): Promise<void> {
    await this.#sql.run(
      "INSERT INTO partial_state_rooms (room_id, join_event_id, servers) VALUES (?, ?, ?) ON CONFLICT (room_id) DO UPDATE SET join_event_id = excluded.join_event_id, servers = excluded.servers",
      [roomId, p.joinEventId, JSON.stringify(p.servers)],
    );
  }

  async getPartialState(roomId: string): Promise<PartialStateRow | null> {
    const r = await this.#sql.get("SELECT * FROM partial_state_rooms WHERE room_id = ?", [roomId]);
    return r ? partialFromRow(r) : null;
  }

  async listPartialState(): Promise<PartialStateRow[]> {
    return (await this.#sql.all("SELECT * FROM partial_state_rooms ORDER BY room_id")).map(partialFromRow);
  }

  async clearPartialState(roomId: string): Promise<void> {
    await this.#sql.run("DELETE FROM partial_state_rooms WHERE room_id = ?", [roomId]);
  }

  async createAlias(alias: string, roomId: string, creator: string): Promise<boolean> {
    const changed = await this.#sql.run(
      "INSERT INTO room_aliases (alias, room_id, creator) VALUES (?, ?, ?) ON CONFLICT (alias) DO NOTHING",
      [alias, roomId, creator],
    );
    return changed === 1;
  }

  async getAlias(alias: string): Promise<{ roomId: string; creator: string } | null> {
    const r = await this.#sql.get("SELECT room_id, creator FROM room_aliases WHERE alias = ?", [alias]);
    return r ? { roomId: r.room_id, creator: r.creator } : null;
  }

  async deleteAlias(alias: string): Promise<boolean> {
    return (await this.#sql.run("DELETE FROM room_aliases WHERE alias = ?", [alias])) === 1;
  }

  async getAliasesForRoom(roomId: string): Promise<string[]> {
    const rows = await this.#sql.all("SELECT alias FROM room_aliases WHERE room_id = ? ORDER BY alias", [roomId]);
    return rows.map((r) => r.alias);
  }

  async moveAliases(fromRoomId: string, toRoomId: string): Promise<string[]> {
    // One statement: the aliases it moved come back from RETURNING, so none can slip in between.
    const rows = await this.#sql.all("UPDATE room_aliases SET room_id = ? WHERE room_id = ? RETURNING alias", [
      toRoomId,
      fromRoomId,
    ]);
    return rows.map((r) => r.alias as string).sort();
  }

  async purgeRoom(roomId: string): Promise<number> {
    const byRoom = (table: string): [string, string[]] => [`DELETE FROM ${table} WHERE room_id = ?`, [roomId]];
    const counts = await this.#sql.atomic([
      ["DELETE FROM event_txns WHERE event_id IN (SELECT event_id FROM events WHERE room_id = ?)", [roomId]],
      ...["event_relations", "notifications", "receipts", "account_data", "reports"].map(byRoom),
      ...["current_state", "state_history", "memberships", "room_aliases"].map(byRoom),
      // The DAG: edges are keyed by event, so they go by the room's events and outliers before those do.
      ...["event_edges", "event_auth_edges"].map((t): [string, string[]] => [
        `DELETE FROM ${t} WHERE event_id IN (SELECT event_id FROM events WHERE room_id = ?
           UNION ALL SELECT event_id FROM event_outliers WHERE room_id = ?)`,
        [roomId, roomId],
      ]),
      ["DELETE FROM state_group_state WHERE group_id IN (SELECT id FROM state_groups WHERE room_id = ?)", [roomId]],
      ...["forward_extremities", "event_outliers", "state_groups"].map(byRoom),
      byRoom("partial_state_rooms"),
      byRoom("events"),
      byRoom("rooms"),
    ]);
    return counts[counts.length - 2];
  }
}

function partialFromRow(r: Record<string, any>): PartialStateRow {
  let servers: unknown = [];
  try {
    servers = JSON.parse(String(r.servers));
  } catch {
    // A damaged row: no servers, the resync falls back to the room's other servers.
  }
  return {
    roomId: r.room_id,
    joinEventId: r.join_event_id,
    servers: Array.isArray(servers) ? servers.filter((x): x is string => typeof x === "string") : [],
  };
}
