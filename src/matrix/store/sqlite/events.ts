/** Events, state and memberships on SQLite. Arrays are passed as one JSON parameter (json_each) so every
 * statement text is fixed and stays in the prepared-statement cache. */
import { AmiError } from "../../../core/errors.ts";
import { containsUrl, membershipOf, redactsOf, splitTypes, toGlob } from "../common.ts";
import { EVENT_COLUMNS, eventFromRow } from "../rows.ts";
import type { EventFilterQuery, MembershipRow, NewEvent, RoomEventQuery, StoredEvent } from "../types.ts";
import { isForeignKeyViolation, isUniqueViolation, type SqliteDb } from "./db.ts";

export const IN_JSON = "(SELECT value FROM json_each(?))";

/** Persist events in one transaction: all of them or none (a batch lets a caller share one commit). */
export function persistEvents(d: SqliteDb, events: NewEvent[]): void {
  d.tx(() => {
    for (const e of events) insertEvent(d, e);
  });
}

function insertEvent(d: SqliteDb, e: NewEvent): void {
  try {
    d.run(
      `INSERT INTO events (stream, event_id, room_id, type, state_key, sender, origin_server_ts, depth, contains_url,
         pdu, txn_device_id, txn_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      e.stream,
      e.eventId,
      e.roomId,
      e.type,
      e.stateKey,
      e.sender,
      e.originServerTs,
      e.depth,
      containsUrl(e.pdu) ? 1 : 0,
      JSON.stringify(e.pdu),
      e.txn?.deviceId ?? null,
      e.txn?.txnId ?? null,
    );
  } catch (err) {
    if (isUniqueViolation(err))
      throw new AmiError("M_UNKNOWN", `event ${e.eventId} or stream position ${e.stream} already persisted`);
    if (isForeignKeyViolation(err)) throw new AmiError("M_UNKNOWN", `room ${e.roomId} is not in the store`);
    throw err;
  }
  if (e.stateKey !== null) {
    d.run(
      "INSERT INTO state_history (room_id, type, state_key, stream, event_id) VALUES (?, ?, ?, ?, ?)",
      e.roomId,
      e.type,
      e.stateKey,
      e.stream,
      e.eventId,
    );
    d.run(
      `INSERT INTO current_state (room_id, type, state_key, stream, event_id) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (room_id, type, state_key) DO UPDATE SET stream = excluded.stream, event_id = excluded.event_id`,
      e.roomId,
      e.type,
      e.stateKey,
      e.stream,
      e.eventId,
    );
  }
  const membership = membershipOf(e);
  if (membership !== null) {
    d.run(
      `INSERT INTO memberships (room_id, user_id, membership, event_id, stream) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (room_id, user_id) DO UPDATE SET membership = excluded.membership, event_id = excluded.event_id,
         stream = excluded.stream`,
      e.roomId,
      e.stateKey,
      membership,
      e.eventId,
      e.stream,
    );
  }
  if (e.type === "m.room.redaction") {
    const target = redactsOf(e.pdu);
    // The first redaction wins; a later one changes nothing a client could see.
    if (target !== null)
      d.run("UPDATE events SET redacted_by = ? WHERE event_id = ? AND redacted_by IS NULL", e.eventId, target);
  }
  if (e.txn) {
    try {
      d.run(
        "INSERT INTO event_txns (user_id, device_id, scope, txn_id, event_id) VALUES (?, ?, ?, ?, ?)",
        e.txn.userId,
        e.txn.deviceId,
        e.txn.scope,
        e.txn.txnId,
        e.eventId,
      );
    } catch (err) {
      if (isUniqueViolation(err)) throw new AmiError("M_UNKNOWN", `transaction ${e.txn.txnId} already recorded`);
      throw err;
    }
  }
}

const one = (row: unknown): StoredEvent | null => (row ? eventFromRow(row) : null);

export const getEvent = (d: SqliteDb, eventId: string): StoredEvent | null =>
  one(d.q(`SELECT ${EVENT_COLUMNS} FROM events e WHERE e.event_id = ?`).get(eventId));

export function getEvents(d: SqliteDb, eventIds: string[]): StoredEvent[] {
  if (eventIds.length === 0) return [];
  return d
    .q(`SELECT ${EVENT_COLUMNS} FROM events e WHERE e.event_id IN ${IN_JSON} ORDER BY e.stream`)
    .all(JSON.stringify(eventIds))
    .map(eventFromRow);
}

export function getReplacedState(d: SqliteDb, streams: number[]): Map<number, StoredEvent> {
  const out = new Map<number, StoredEvent>();
  if (streams.length === 0) return out;
  const rows = d
    .q(
      `SELECT x.stream AS for_stream, ${EVENT_COLUMNS} FROM events x
       JOIN events e ON e.stream = (
         SELECT h.stream FROM state_history h
         WHERE h.room_id = x.room_id AND h.type = x.type AND h.state_key = x.state_key AND h.stream < x.stream
         ORDER BY h.stream DESC LIMIT 1)
       WHERE x.stream IN ${IN_JSON} AND x.state_key IS NOT NULL`,
    )
    .all(JSON.stringify(streams)) as any[];
  for (const r of rows) out.set(Number(r.for_stream), eventFromRow(r));
  return out;
}

export function getTxnEvent(
  d: SqliteDb,
  userId: string,
  deviceId: string,
  scope: string,
  txnId: string,
): string | null {
  const r = d
    .q("SELECT event_id FROM event_txns WHERE user_id = ? AND device_id = ? AND scope = ? AND txn_id = ?")
    .get(userId, deviceId, scope, txnId) as any;
  return r ? r.event_id : null;
}

export const getLatestEvent = (d: SqliteDb, roomId: string): StoredEvent | null =>
  one(d.q(`SELECT ${EVENT_COLUMNS} FROM events e WHERE e.room_id = ? ORDER BY e.stream DESC LIMIT 1`).get(roomId));

export const getCurrentState = (d: SqliteDb, roomId: string): StoredEvent[] =>
  d
    .q(
      `SELECT ${EVENT_COLUMNS} FROM current_state c JOIN events e ON e.stream = c.stream
       WHERE c.room_id = ? ORDER BY e.stream`,
    )
    .all(roomId)
    .map(eventFromRow);

export const getCurrentStateEvent = (d: SqliteDb, roomId: string, type: string, stateKey: string): StoredEvent | null =>
  one(
    d
      .q(
        `SELECT ${EVENT_COLUMNS} FROM current_state c JOIN events e ON e.stream = c.stream
         WHERE c.room_id = ? AND c.type = ? AND c.state_key = ?`,
      )
      .get(roomId, type, stateKey),
  );

export function getStateAt(d: SqliteDb, roomId: string, stream: number, types?: string[]): StoredEvent[] {
  if (types && types.length === 0) return [];
  // max() with GROUP BY walks the (room_id, type, state_key, stream) key in order: one covering index range.
  const sql = `SELECT ${EVENT_COLUMNS} FROM events e WHERE e.stream IN (
      SELECT max(h.stream) FROM state_history h WHERE h.room_id = ? AND h.stream <= ?
      ${types ? `AND h.type IN ${IN_JSON}` : ""} GROUP BY h.type, h.state_key)
    ORDER BY e.stream`;
  const params: (string | number)[] = [roomId, stream];
  if (types) params.push(JSON.stringify(types));
  return d
    .q(sql)
    .all(...params)
    .map(eventFromRow);
}

export const membershipFromRow = (r: any): MembershipRow => ({
  roomId: r.room_id,
  userId: r.user_id,
  membership: r.membership,
  eventId: r.event_id,
  stream: r.stream,
});
export const MEMBER_COLUMNS = "room_id, user_id, membership, event_id, stream";

export function getMembership(d: SqliteDb, roomId: string, userId: string): MembershipRow | null {
  const r = d.q(`SELECT ${MEMBER_COLUMNS} FROM memberships WHERE room_id = ? AND user_id = ?`).get(roomId, userId);
  return r ? membershipFromRow(r) : null;
}

export const getRoomsForUser = (d: SqliteDb, userId: string): MembershipRow[] =>
  d
    .q(`SELECT ${MEMBER_COLUMNS} FROM memberships WHERE user_id = ? ORDER BY room_id`)
    .all(userId)
    .map(membershipFromRow);

export function getMembers(d: SqliteDb, roomId: string, membership?: string): MembershipRow[] {
  const rows =
    membership === undefined
      ? d.q(`SELECT ${MEMBER_COLUMNS} FROM memberships WHERE room_id = ? ORDER BY user_id`).all(roomId)
      : d
          .q(`SELECT ${MEMBER_COLUMNS} FROM memberships WHERE room_id = ? AND membership = ? ORDER BY user_id`)
          .all(roomId, membership);
  return rows.map(membershipFromRow);
}

/** SQL condition (and its parameters) for "type matches one of `types`" (exact or "*" patterns). */
export function typeCondition(types: string[], params: string[]): string {
  const { exact, patterns } = splitTypes(types);
  const parts: string[] = [];
  if (exact.length) {
    parts.push(`e.type IN ${IN_JSON}`);
    params.push(JSON.stringify(exact));
  }
  if (patterns.length) {
    parts.push("EXISTS (SELECT 1 FROM json_each(?) p WHERE e.type GLOB p.value)");
    params.push(JSON.stringify(patterns.map(toGlob)));
  }
  return parts.length ? `(${parts.join(" OR ")})` : "0";
}

/** Push the SQL conditions (on alias e) of an event filter onto `where`, their parameters onto `strs`. */
export function filterConditions(q: EventFilterQuery, where: string[], strs: string[]): void {
  if (q.types) where.push(typeCondition(q.types, strs));
  if (q.notTypes?.length) where.push(`NOT ${typeCondition(q.notTypes, strs)}`);
  if (q.senders) {
    where.push(`e.sender IN ${IN_JSON}`);
    strs.push(JSON.stringify(q.senders));
  }
  if (q.notSenders?.length) {
    where.push(`e.sender NOT IN ${IN_JSON}`);
    strs.push(JSON.stringify(q.notSenders));
  }
  if (q.containsUrl !== undefined) where.push(`e.contains_url = ${q.containsUrl ? 1 : 0}`);
}

export function getRoomEvents(d: SqliteDb, q: RoomEventQuery): StoredEvent[] {
  if (q.limit <= 0) return [];
  const back = q.dir === "b";
  const where = ["e.room_id = ?", back ? "e.stream < ?" : "e.stream > ?"];
  const params: (string | number)[] = [q.roomId, q.from];
  if (q.to !== undefined) {
    where.push(back ? "e.stream > ?" : "e.stream < ?");
    params.push(q.to);
  }
  const strs: string[] = [];
  filterConditions(q, where, strs);
  const sql = `SELECT ${EVENT_COLUMNS} FROM events e WHERE ${where.join(" AND ")}
    ORDER BY e.stream ${back ? "DESC" : "ASC"} LIMIT ?`;
  return d
    .q(sql)
    .all(...params, ...strs, q.limit)
    .map(eventFromRow);
}

export function getRoomMaxStreams(d: SqliteDb, roomIds: string[]): Map<string, number> {
  const out = new Map<string, number>();
  if (roomIds.length === 0) return out;
  // A correlated max() per room is one index seek each (GROUP BY would walk every event of every room).
  const rows = d
    .q(
      `SELECT j.value AS room_id, (SELECT max(e.stream) FROM events e WHERE e.room_id = j.value) AS m
       FROM json_each(?) j`,
    )
    .all(JSON.stringify(roomIds)) as any[];
  for (const r of rows) if (r.m !== null) out.set(r.room_id, r.m);
  return out;
}

export function countEvents(
  d: SqliteDb,
  roomId: string,
  afterStream: number,
  uptoStream: number,
  excludeSender: string,
  types: string[],
): number {
  if (types.length === 0 || uptoStream <= afterStream) return 0;
  const strs: string[] = [];
  const cond = typeCondition(types, strs);
  const r = d
    .q(
      `SELECT count(*) AS n FROM events e WHERE e.room_id = ? AND e.stream > ? AND e.stream <= ? AND e.sender <> ?
       AND ${cond}`,
    )
    .get(roomId, afterStream, uptoStream, excludeSender, ...strs) as any;
  return r.n;
}

export function getMaxStream(d: SqliteDb): number {
  const r = d
    .q(
      `SELECT max(
         coalesce((SELECT max(stream) FROM events), 0),
         coalesce((SELECT max(stream) FROM account_data), 0),
         coalesce((SELECT max(stream) FROM receipts), 0),
         coalesce((SELECT max(stream) FROM presence), 0)) AS m`,
    )
    .get() as any;
  return r.m;
}
