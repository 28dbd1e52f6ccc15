/**
 * Batched reads on PostgreSQL: one round trip for many rooms (/sync over hundreds of rooms). Per-room inputs
 * travel as parallel arrays unnested WITH ORDINALITY; `idx` (1-based) groups the rows back.
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
import type { PgDb } from "./db.ts";
import { filterConditions, MEMBER_COLUMNS, membershipFromRow, typeCondition } from "./events.ts";

/** Rows carrying a 1-based `idx` column, grouped into one list per input (in row order). */
function byIndex<T>(n: number, rows: any[], map: (r: any) => T): T[][] {
  const out: T[][] = Array.from({ length: n }, () => []);
  for (const r of rows) out[Number(r.idx) - 1].push(map(r));
  return out;
}

export async function getLatestEventsPerRoom(
  d: PgDb,
  windows: RoomStreamWindow[],
  limit: number,
  filter: EventFilterQuery = {},
): Promise<StoredEvent[][]> {
  if (windows.length === 0 || limit <= 0) return windows.map(() => []);
  const params: unknown[] = [
    windows.map((w) => w.roomId),
    windows.map((w) => w.before),
    windows.map((w) => w.after ?? -1),
  ];
  const where = ["e.room_id = w.room_id", "e.stream < w.before", "e.stream > w.after"];
  filterConditions(filter, where, params);
  params.push(limit);
  // LATERAL: one backward walk of events_room_stream per window, stopping after `limit` matches.
  const sql = `SELECT w.idx, ${EVENT_COLUMNS}
    FROM unnest($1::text[], $2::bigint[], $3::bigint[]) WITH ORDINALITY AS w(room_id, before, after, idx)
    CROSS JOIN LATERAL (
      SELECT * FROM events e WHERE ${where.join(" AND ")} ORDER BY e.stream DESC LIMIT $${params.length}) e
    ORDER BY w.idx, e.stream DESC`;
  return byIndex(windows.length, await d.rows(sql, params), eventFromRow);
}

export async function getStatesAt(d: PgDb, points: RoomAt[], types?: string[]): Promise<StoredEvent[][]> {
  if (points.length === 0 || (types && types.length === 0)) return points.map(() => []);
  const params: unknown[] = [points.map((p) => p.roomId), points.map((p) => p.stream)];
  if (types) params.push(types);
  // max() grouped by (type, state_key) per point: the newest state row at or before each point.
  const sql = `SELECT s.idx, ${EVENT_COLUMNS} FROM (
      SELECT p.idx, max(h.stream) AS stream
      FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS p(room_id, at, idx)
      JOIN state_history h ON h.room_id = p.room_id AND h.stream <= p.at ${types ? "AND h.type = ANY($3::text[])" : ""}
      GROUP BY p.idx, h.type, h.state_key) s
    JOIN events e ON e.stream = s.stream
    ORDER BY s.idx, e.stream`;
  return byIndex(points.length, await d.rows(sql, params), eventFromRow);
}

export async function getStateHistories(d: PgDb, keys: RoomStateKey[]): Promise<StoredEvent[][]> {
  if (keys.length === 0) return [];
  const params = [keys.map((k) => k.roomId), keys.map((k) => k.type), keys.map((k) => k.stateKey)];
  // state_history's primary key (room_id, type, state_key, stream) serves each key as one range scan.
  const sql = `SELECT k.idx, ${EVENT_COLUMNS}
    FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS k(room_id, type, state_key, idx)
    JOIN state_history h ON h.room_id = k.room_id AND h.type = k.type AND h.state_key = k.state_key
    JOIN events e ON e.stream = h.stream
    ORDER BY k.idx, h.stream`;
  return byIndex(keys.length, await d.rows(sql, params), eventFromRow);
}

export async function getMembersOfRooms(d: PgDb, roomIds: string[]): Promise<Map<string, MembershipRow[]>> {
  const out = new Map<string, MembershipRow[]>(roomIds.map((id) => [id, []]));
  if (roomIds.length === 0) return out;
  const rows = await d.rows(
    `SELECT ${MEMBER_COLUMNS} FROM memberships WHERE room_id = ANY($1::text[]) ORDER BY room_id, user_id`,
    [roomIds],
  );
  for (const r of rows) out.get(r.room_id)?.push(membershipFromRow(r));
  return out;
}

export async function countEventsPerRoom(
  d: PgDb,
  ranges: RoomStreamRange[],
  excludeSender: string,
  types: string[],
): Promise<number[]> {
  if (ranges.length === 0 || types.length === 0) return ranges.map(() => 0);
  const params: unknown[] = [
    ranges.map((r) => r.roomId),
    ranges.map((r) => r.after),
    ranges.map((r) => r.upto),
    excludeSender,
  ];
  const cond = typeCondition(types, params);
  const rows = await d.rows(
    `SELECT p.idx, (SELECT count(*) FROM events e WHERE e.room_id = p.room_id AND e.stream > p.after
       AND e.stream <= p.upto AND e.sender <> $4 AND ${cond}) AS n
     FROM unnest($1::text[], $2::bigint[], $3::bigint[]) WITH ORDINALITY AS p(room_id, after, upto, idx)`,
    params,
  );
  const out = ranges.map(() => 0);
  for (const r of rows) out[Number(r.idx) - 1] = Number(r.n);
  return out;
}

export async function getUserReceipts(d: PgDb, userId: string, roomIds: string[]): Promise<ReceiptRow[]> {
  if (roomIds.length === 0) return [];
  const rows = await d.rows(
    "SELECT * FROM receipts WHERE user_id = $1 AND room_id = ANY($2::text[]) ORDER BY room_id, stream",
    [userId, roomIds],
  );
  return rows.map(receiptFromRow);
}

// ---- many users at once (the WebSocket hub computes the frames of many connections together) ----------------

/** Every receipt of these users in these rooms, ordered by user, room, stream. */
export async function getReceiptsOfUsers(d: PgDb, userIds: string[], roomIds: string[]): Promise<ReceiptRow[]> {
  if (userIds.length === 0 || roomIds.length === 0) return [];
  const rows = await d.rows(
    `SELECT * FROM receipts WHERE user_id = ANY($1::text[]) AND room_id = ANY($2::text[])
     ORDER BY user_id, room_id, stream`,
    [userIds, roomIds],
  );
  return rows.map(receiptFromRow);
}

/** The users that exist among `userIds`, ordered by user ID. */
export async function getUsers(d: PgDb, userIds: string[]): Promise<UserRow[]> {
  if (userIds.length === 0) return [];
  const rows = await d.rows("SELECT * FROM users WHERE user_id = ANY($1::text[]) ORDER BY user_id", [userIds]);
  return rows.map(userFromRow);
}

/** getAccountData(userId, roomId, type) for each of `userIds` that has it, ordered by user ID. */
export async function getAccountDataOfUsers(
  d: PgDb,
  userIds: string[],
  roomId: string | null,
  type: string,
): Promise<AccountDataRow[]> {
  if (userIds.length === 0) return [];
  const rows = await d.rows(
    "SELECT * FROM account_data WHERE user_id = ANY($1::text[]) AND room_id = $2 AND type = $3 ORDER BY user_id",
    [userIds, roomId ?? NONE, type],
  );
  return rows.map(accountDataFromRow);
}

/** countOneTimeKeys of each device, in input order: one round trip (unnest WITH ORDINALITY gives the index). */
export async function countOneTimeKeysMany(d: PgDb, devices: DeviceRef[]): Promise<Record<string, number>[]> {
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
export async function unusedFallbackKeyTypesMany(d: PgDb, devices: DeviceRef[]): Promise<string[][]> {
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
