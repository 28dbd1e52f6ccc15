/**
 * Batched reads on SQLite: one statement for many rooms (/sync over hundreds of rooms). Per-room inputs travel
 * as one JSON array (json_each), so each statement text is fixed and stays in the prepared-statement cache;
 * json_each's `key` is the input's index, which groups the rows back.
 */
import type { DeviceRef } from "../keys-types.ts";
import { accountDataFromRow, EVENT_COLUMNS, eventFromRow, NONE, receiptFromRow, userFromRow } from "../rows.ts";
import type {
  AccountDataRow,
  EventFilterQuery,
  MembershipRow,
  ReceiptRow,
  RoomAt,
  RoomStateKey,
  RoomStreamRange,
  RoomStreamWindow,
  StoredEvent,
  UserRow,
} from "../types.ts";
import type { SqliteDb } from "./db.ts";
import { filterConditions, IN_JSON, MEMBER_COLUMNS, membershipFromRow, typeCondition } from "./events.ts";

/** Rows carrying an `idx` column, grouped into one list per input (in row order). */
function byIndex<T>(n: number, rows: any[], map: (r: any) => T): T[][] {
  const out: T[][] = Array.from({ length: n }, () => []);
  for (const r of rows) out[Number(r.idx)].push(map(r));
  return out;
}

export function getLatestEventsPerRoom(
  d: SqliteDb,
  windows: RoomStreamWindow[],
  limit: number,
  filter: EventFilterQuery = {},
): StoredEvent[][] {
  if (windows.length === 0 || limit <= 0) return windows.map(() => []);
  const where = ["e.room_id = w.value ->> 0", "e.stream < w.value ->> 1", "e.stream > w.value ->> 2"];
  const strs: string[] = [];
  filterConditions(filter, where, strs);
  // The correlated LIMIT subquery is SQLite's LATERAL: one backward walk of events_room_stream per window.
  const sql = `SELECT w.key AS idx, ${EVENT_COLUMNS} FROM json_each(?) w
    JOIN events e ON e.stream IN (
      SELECT e.stream FROM events e WHERE ${where.join(" AND ")} ORDER BY e.stream DESC LIMIT ?)
    ORDER BY w.key, e.stream DESC`;
  const json = JSON.stringify(windows.map((w) => [w.roomId, w.before, w.after ?? -1]));
  return byIndex(windows.length, d.q(sql).all(json, ...strs, limit), eventFromRow);
}

export function getStatesAt(d: SqliteDb, points: RoomAt[], types?: string[]): StoredEvent[][] {
  if (points.length === 0 || (types && types.length === 0)) return points.map(() => []);
  // max() grouped by (type, state_key) per point: the newest state row at or before each point.
  const sql = `SELECT s.idx, ${EVENT_COLUMNS} FROM (
      SELECT p.key AS idx, max(h.stream) AS stream FROM json_each(?) p
      JOIN state_history h ON h.room_id = p.value ->> 0 AND h.stream <= p.value ->> 1
      ${types ? `AND h.type IN ${IN_JSON}` : ""}
      GROUP BY p.key, h.type, h.state_key) s
    JOIN events e ON e.stream = s.stream
    ORDER BY s.idx, e.stream`;
  const params = [JSON.stringify(points.map((p) => [p.roomId, p.stream]))];
  if (types) params.push(JSON.stringify(types));
  return byIndex(points.length, d.q(sql).all(...params), eventFromRow);
}

export function getStateHistories(d: SqliteDb, keys: RoomStateKey[]): StoredEvent[][] {
  if (keys.length === 0) return [];
  // state_history's primary key (room_id, type, state_key, stream) serves each key as one range scan.
  const sql = `SELECT k.key AS idx, ${EVENT_COLUMNS} FROM json_each(?) k
    JOIN state_history h ON h.room_id = k.value ->> 0 AND h.type = k.value ->> 1 AND h.state_key = k.value ->> 2
    JOIN events e ON e.stream = h.stream
    ORDER BY k.key, h.stream`;
  const json = JSON.stringify(keys.map((k) => [k.roomId, k.type, k.stateKey]));
  return byIndex(keys.length, d.q(sql).all(json), eventFromRow);
}

export function getMembersOfRooms(d: SqliteDb, roomIds: string[]): Map<string, MembershipRow[]> {
  const out = new Map<string, MembershipRow[]>(roomIds.map((id) => [id, []]));
  if (roomIds.length === 0) return out;
  const rows = d
    .q(`SELECT ${MEMBER_COLUMNS} FROM memberships WHERE room_id IN ${IN_JSON} ORDER BY room_id, user_id`)
    .all(JSON.stringify(roomIds));
  for (const r of rows) out.get((r as any).room_id)?.push(membershipFromRow(r));
  return out;
}

export function countEventsPerRoom(
  d: SqliteDb,
  ranges: RoomStreamRange[],
  excludeSender: string,
  types: string[],
): number[] {
  if (ranges.length === 0 || types.length === 0) return ranges.map(() => 0);
  const strs: string[] = [];
  const cond = typeCondition(types, strs);
  const rows = d
    .q(
      `SELECT p.key AS idx, (SELECT count(*) FROM events e WHERE e.room_id = p.value ->> 0
         AND e.stream > p.value ->> 1 AND e.stream <= p.value ->> 2 AND e.sender <> ? AND ${cond}) AS n
       FROM json_each(?) p`,
    )
    .all(excludeSender, ...strs, JSON.stringify(ranges.map((r) => [r.roomId, r.after, r.upto]))) as any[];
  const out = ranges.map(() => 0);
  for (const r of rows) out[Number(r.idx)] = Number(r.n);
  return out;
}

export function getUserReceipts(d: SqliteDb, userId: string, roomIds: string[]): ReceiptRow[] {
  if (roomIds.length === 0) return [];
  return d
    .q(`SELECT * FROM receipts WHERE user_id = ? AND room_id IN ${IN_JSON} ORDER BY room_id, stream`)
    .all(userId, JSON.stringify(roomIds))
    .map(receiptFromRow);
}

// ---- many users at once (the WebSocket hub computes the frames of many connections together) ----------------

/** Every receipt of these users in these rooms, ordered by user, room, stream. */
export function getReceiptsOfUsers(d: SqliteDb, userIds: string[], roomIds: string[]): ReceiptRow[] {
  if (userIds.length === 0 || roomIds.length === 0) return [];
  return d
    .q(
      `SELECT * FROM receipts WHERE user_id IN ${IN_JSON} AND room_id IN ${IN_JSON}
       ORDER BY user_id, room_id, stream`,
    )
    .all(JSON.stringify(userIds), JSON.stringify(roomIds))
    .map(receiptFromRow);
}

/** The users that exist among `userIds`, ordered by user ID. */
export function getUsers(d: SqliteDb, userIds: string[]): UserRow[] {
  if (userIds.length === 0) return [];
  return d
    .q(`SELECT * FROM users WHERE user_id IN ${IN_JSON} ORDER BY user_id`)
    .all(JSON.stringify(userIds))
    .map(userFromRow);
}

/** getAccountData(userId, roomId, type) for each of `userIds` that has it, ordered by user ID. */
export function getAccountDataOfUsers(
  d: SqliteDb,
  userIds: string[],
  roomId: string | null,
  type: string,
): AccountDataRow[] {
  if (userIds.length === 0) return [];
  return d
    .q(`SELECT * FROM account_data WHERE user_id IN ${IN_JSON} AND room_id = ? AND type = ? ORDER BY user_id`)
    .all(JSON.stringify(userIds), roomId ?? NONE, type)
    .map(accountDataFromRow);
}

/** countOneTimeKeys of each device, in input order: one statement (json_each's key is the input's index). */
export function countOneTimeKeysMany(d: SqliteDb, devices: DeviceRef[]): Record<string, number>[] {
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
export function unusedFallbackKeyTypesMany(d: SqliteDb, devices: DeviceRef[]): string[][] {
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
