/** Events, state and memberships on PostgreSQL. */
import { AmiError } from "../../../core/errors.ts";
import { containsUrl, membershipOf, redactsOf, splitTypes, toLike } from "../common.ts";
import { EVENT_COLUMNS, eventFromRow } from "../rows.ts";
import type { EventFilterQuery, MembershipRow, NewEvent, RoomEventQuery, StoredEvent } from "../types.ts";
import { isForeignKeyViolation, isUniqueViolation, type PgDb } from "./db.ts";

/**
 * persistEvent as ONE statement: data-modifying CTEs run together and atomically, so the whole write is one
 * round trip and one commit (optional parts are skipped by their WHERE on a NULL parameter).
 */
const PERSIST = `
WITH ev AS (
  INSERT INTO events (stream, event_id, room_id, type, state_key, sender, origin_server_ts, depth, contains_url, pdu,
    txn_device_id, txn_id)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
  RETURNING stream
), sh AS (
  INSERT INTO state_history (room_id, type, state_key, stream, event_id)
  SELECT $3, $4, $5, $1, $2 WHERE $5::text IS NOT NULL
), cs AS (
  INSERT INTO current_state (room_id, type, state_key, stream, event_id)
  SELECT $3, $4, $5, $1, $2 WHERE $5::text IS NOT NULL
  ON CONFLICT (room_id, type, state_key) DO UPDATE SET stream = EXCLUDED.stream, event_id = EXCLUDED.event_id
), mb AS (
  INSERT INTO memberships (room_id, user_id, membership, event_id, stream)
  SELECT $3, $5, $13, $2, $1 WHERE $13::text IS NOT NULL
  ON CONFLICT (room_id, user_id) DO UPDATE SET membership = EXCLUDED.membership, event_id = EXCLUDED.event_id,
    stream = EXCLUDED.stream
), rd AS (
  UPDATE events SET redacted_by = $2 WHERE $14::text IS NOT NULL AND event_id = $14 AND redacted_by IS NULL
), tx AS (
  INSERT INTO event_txns (user_id, device_id, scope, txn_id, event_id)
  SELECT $15, $11, $16, $12, $2 WHERE $15::text IS NOT NULL
)
SELECT stream FROM ev`;

const persistParams = (e: NewEvent): unknown[] => [
  e.stream,
  e.eventId,
  e.roomId,
  e.type,
  e.stateKey,
  e.sender,
  e.originServerTs,
  e.depth,
  containsUrl(e.pdu),
  JSON.stringify(e.pdu),
  e.txn?.deviceId ?? null,
  e.txn?.txnId ?? null,
  membershipOf(e),
  e.type === "m.room.redaction" ? redactsOf(e.pdu) : null,
  e.txn?.userId ?? null,
  e.txn?.scope ?? null,
];

function persistError(err: unknown, e: NewEvent): unknown {
  if (isUniqueViolation(err))
    return new AmiError("M_UNKNOWN", `event ${e.eventId}, stream position ${e.stream} or its txnId already persisted`);
  if (isForeignKeyViolation(err)) return new AmiError("M_UNKNOWN", `room ${e.roomId} is not in the store`);
  return err;
}

export async function persistEvent(d: PgDb, e: NewEvent): Promise<void> {
  try {
    await d.query(PERSIST, persistParams(e));
  } catch (err) {
    throw persistError(err, e);
  }
}

/** Several events in one transaction (one commit, so one WAL flush, for all of them): all or none. */
export async function persistEvents(d: PgDb, events: NewEvent[]): Promise<void> {
  if (events.length === 0) return;
  if (events.length === 1) return persistEvent(d, events[0]);
  await d.tx(async (c) => {
    for (const e of events) {
      try {
        await d.query(PERSIST, persistParams(e), c);
      } catch (err) {
        throw persistError(err, e);
      }
    }
  });
}

export const getEvent = async (d: PgDb, eventId: string): Promise<StoredEvent | null> => {
  const r = await d.row(`SELECT ${EVENT_COLUMNS} FROM events e WHERE e.event_id = $1`, [eventId]);
  return r ? eventFromRow(r) : null;
};

export async function getEvents(d: PgDb, eventIds: string[]): Promise<StoredEvent[]> {
  if (eventIds.length === 0) return [];
  const rows = await d.rows(`SELECT ${EVENT_COLUMNS} FROM events e WHERE e.event_id = ANY($1) ORDER BY e.stream`, [
    eventIds,
  ]);
  return rows.map(eventFromRow);
}

export async function getReplacedState(d: PgDb, streams: number[]): Promise<Map<number, StoredEvent>> {
  const out = new Map<number, StoredEvent>();
  if (streams.length === 0) return out;
  const rows = await d.rows(
    `SELECT x.stream AS for_stream, ${EVENT_COLUMNS} FROM events x
     JOIN LATERAL (
       SELECT h.stream FROM state_history h
       WHERE h.room_id = x.room_id AND h.type = x.type AND h.state_key = x.state_key AND h.stream < x.stream
       ORDER BY h.stream DESC LIMIT 1) p ON true
     JOIN events e ON e.stream = p.stream
     WHERE x.stream = ANY($1) AND x.state_key IS NOT NULL`,
    [streams],
  );
  for (const r of rows) out.set(Number(r.for_stream), eventFromRow(r));
  return out;
}

export async function getTxnEvent(
  d: PgDb,
  userId: string,
  deviceId: string,
  scope: string,
  txnId: string,
): Promise<string | null> {
  const r = await d.row(
    "SELECT event_id FROM event_txns WHERE user_id = $1 AND device_id = $2 AND scope = $3 AND txn_id = $4",
    [userId, deviceId, scope, txnId],
  );
  return r ? r.event_id : null;
}

export async function getLatestEvent(d: PgDb, roomId: string): Promise<StoredEvent | null> {
  const r = await d.row(`SELECT ${EVENT_COLUMNS} FROM events e WHERE e.room_id = $1 ORDER BY e.stream DESC LIMIT 1`, [
    roomId,
  ]);
  return r ? eventFromRow(r) : null;
}

export async function getCurrentState(d: PgDb, roomId: string): Promise<StoredEvent[]> {
  const rows = await d.rows(
    `SELECT ${EVENT_COLUMNS} FROM current_state c JOIN events e ON e.stream = c.stream
     WHERE c.room_id = $1 ORDER BY e.stream`,
    [roomId],
  );
  return rows.map(eventFromRow);
}

export async function getCurrentStateEvent(
  d: PgDb,
  roomId: string,
  type: string,
  stateKey: string,
): Promise<StoredEvent | null> {
  const r = await d.row(
    `SELECT ${EVENT_COLUMNS} FROM current_state c JOIN events e ON e.stream = c.stream
     WHERE c.room_id = $1 AND c.type = $2 AND c.state_key = $3`,
    [roomId, type, stateKey],
  );
  return r ? eventFromRow(r) : null;
}

export async function getStateAt(d: PgDb, roomId: string, stream: number, types?: string[]): Promise<StoredEvent[]> {
  if (types && types.length === 0) return [];
  const sql = `SELECT ${EVENT_COLUMNS} FROM events e WHERE e.stream IN (
      SELECT max(h.stream) FROM state_history h WHERE h.room_id = $1 AND h.stream <= $2
      ${types ? "AND h.type = ANY($3)" : ""} GROUP BY h.type, h.state_key)
    ORDER BY e.stream`;
  const rows = await d.rows(sql, types ? [roomId, stream, types] : [roomId, stream]);
  return rows.map(eventFromRow);
}

export const MEMBER_COLUMNS = "room_id, user_id, membership, event_id, stream";
export const membershipFromRow = (r: any): MembershipRow => ({
  roomId: r.room_id,
  userId: r.user_id,
  membership: r.membership,
  eventId: r.event_id,
  stream: r.stream,
});

export async function getMembership(d: PgDb, roomId: string, userId: string): Promise<MembershipRow | null> {
  const r = await d.row(`SELECT ${MEMBER_COLUMNS} FROM memberships WHERE room_id = $1 AND user_id = $2`, [
    roomId,
    userId,
  ]);
  return r ? membershipFromRow(r) : null;
}

export async function getRoomsForUser(d: PgDb, userId: string): Promise<MembershipRow[]> {
  const rows = await d.rows(`SELECT ${MEMBER_COLUMNS} FROM memberships WHERE user_id = $1 ORDER BY room_id`, [userId]);
  return rows.map(membershipFromRow);
}

export async function getMembers(d: PgDb, roomId: string, membership?: string): Promise<MembershipRow[]> {
  const rows =
    membership === undefined
      ? await d.rows(`SELECT ${MEMBER_COLUMNS} FROM memberships WHERE room_id = $1 ORDER BY user_id`, [roomId])
      : await d.rows(
          `SELECT ${MEMBER_COLUMNS} FROM memberships WHERE room_id = $1 AND membership = $2 ORDER BY user_id`,
          [roomId, membership],
        );
  return rows.map(membershipFromRow);
}

/** SQL condition for "type matches one of `types`" (exact, or "*" patterns via LIKE ANY); pushes its params. */
export function typeCondition(types: string[], params: unknown[]): string {
  const { exact, patterns } = splitTypes(types);
  const parts: string[] = [];
  if (exact.length) {
    params.push(exact);
    parts.push(`e.type = ANY($${params.length}::text[])`);
  }
  if (patterns.length) {
    params.push(patterns.map(toLike));
    parts.push(`e.type LIKE ANY($${params.length}::text[])`);
  }
  return parts.length ? `(${parts.join(" OR ")})` : "false";
}

/** Push the SQL conditions (on alias e) of an event filter onto `where`, their parameters onto `params`. */
export function filterConditions(q: EventFilterQuery, where: string[], params: unknown[]): void {
  if (q.types) where.push(typeCondition(q.types, params));
  if (q.notTypes?.length) where.push(`NOT ${typeCondition(q.notTypes, params)}`);
  if (q.senders) {
    params.push(q.senders);
    where.push(`e.sender = ANY($${params.length}::text[])`);
  }
  if (q.notSenders?.length) {
    params.push(q.notSenders);
    where.push(`e.sender <> ALL($${params.length}::text[])`);
  }
  if (q.containsUrl !== undefined) where.push(`e.contains_url = ${q.containsUrl ? "true" : "false"}`);
}

export async function getRoomEvents(d: PgDb, q: RoomEventQuery): Promise<StoredEvent[]> {
  if (q.limit <= 0) return [];
  const back = q.dir === "b";
  const params: unknown[] = [q.roomId, q.from];
  const where = ["e.room_id = $1", back ? "e.stream < $2" : "e.stream > $2"];
  if (q.to !== undefined) {
    params.push(q.to);
    where.push(back ? `e.stream > $${params.length}` : `e.stream < $${params.length}`);
  }
  filterConditions(q, where, params);
  params.push(q.limit);
  const sql = `SELECT ${EVENT_COLUMNS} FROM events e WHERE ${where.join(" AND ")}
    ORDER BY e.stream ${back ? "DESC" : "ASC"} LIMIT $${params.length}`;
  return (await d.rows(sql, params)).map(eventFromRow);
}

export async function getRoomMaxStreams(d: PgDb, roomIds: string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (roomIds.length === 0) return out;
  // A correlated max() per room is one backward index probe each.
  const rows = await d.rows(
    `SELECT r.room_id, (SELECT max(e.stream) FROM events e WHERE e.room_id = r.room_id) AS m
     FROM unnest($1::text[]) AS r(room_id)`,
    [roomIds],
  );
  for (const r of rows) if (r.m !== null) out.set(r.room_id, r.m);
  return out;
}

export async function countEvents(
  d: PgDb,
  roomId: string,
  afterStream: number,
  uptoStream: number,
  excludeSender: string,
  types: string[],
): Promise<number> {
  if (types.length === 0 || uptoStream <= afterStream) return 0;
  const params: unknown[] = [roomId, afterStream, uptoStream, excludeSender];
  const cond = typeCondition(types, params);
  const r = await d.row(
    `SELECT count(*) AS n FROM events e WHERE e.room_id = $1 AND e.stream > $2 AND e.stream <= $3 AND e.sender <> $4
     AND ${cond}`,
    params,
  );
  return r.n;
}

export async function getMaxStream(d: PgDb): Promise<number> {
  const r = await d.row(
    `SELECT GREATEST(
       coalesce((SELECT max(stream) FROM events), 0),
       coalesce((SELECT max(stream) FROM account_data), 0),
       coalesce((SELECT max(stream) FROM receipts), 0),
       coalesce((SELECT max(stream) FROM presence), 0)) AS m`,
  );
  return r.m;
}
