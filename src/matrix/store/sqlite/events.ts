/**
 * The EventStore on SQLite: the persist path, filtered timeline reads and the batched reads (one statement for
 * many rooms: /sync over hundreds of rooms); the reads both dialects share are in sql/events.ts. Arrays travel as
 * one JSON parameter (json_each) so every statement text is fixed and stays in the prepared-statement cache;
 * in the batched reads json_each's `key` is the input's index, which groups the rows back.
 */
import { AmiError } from "../../../core/errors.ts";
import { containsUrl, membershipOf, redactsOf, relationOf, splitTypes, toGlob } from "../common.ts";
import { COPY_GROUP_STATE, copyParams, idList, planEventState, type StatePlan } from "../dag.ts";
import { byIndex, EVENT_COLUMNS, eventFromRow } from "../rows.ts";
import { SqlEventReads, TIMELINE } from "../sql/events.ts";
import type {
  EventFilterQuery,
  EventStore,
  NewEvent,
  RoomAt,
  RoomEventQuery,
  RoomStateKey,
  RoomStreamRange,
  RoomStreamWindow,
  StoredEvent,
} from "../types.ts";
import { isForeignKeyViolation, isUniqueViolation, type SqliteDb, SqliteSql } from "./db.ts";

const IN_JSON = "(SELECT value FROM json_each(?))";

/** SQL condition (and its parameters) for "type matches one of `types`" (exact or "*" patterns). */
function typeCondition(types: string[], params: string[]): string {
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

export class SqliteEventStore extends SqlEventReads implements EventStore {
  readonly #conn: () => SqliteDb;
  /** `conn` throws once the store is closed. */
  constructor(conn: () => SqliteDb) {
    super(new SqliteSql(conn));
    this.#conn = conn;
  }

  async persistEvent(e: NewEvent): Promise<void> {
    return this.persistEvents([e]);
  }

  /** Persist events in one transaction: all of them or none (a batch lets a caller share one commit). */
  async persistEvents(events: NewEvent[]): Promise<void> {
    const d = this.#conn();
    d.tx(() => {
      for (const e of events) insertEvent(d, e);
    });
  }

  async getReplacedState(streams: number[]): Promise<Map<number, StoredEvent>> {
    const out = new Map<number, StoredEvent>();
    if (streams.length === 0) return out;
    const rows = this.#conn()
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

  async getRoomEvents(q: RoomEventQuery): Promise<StoredEvent[]> {
    if (q.limit <= 0) return [];
    const back = q.dir === "b";
    const where = ["e.room_id = ?", back ? "e.stream < ?" : "e.stream > ?", TIMELINE];
    const params: (string | number)[] = [q.roomId, q.from];
    if (q.to !== undefined) {
      where.push(back ? "e.stream > ?" : "e.stream < ?");
      params.push(q.to);
    }
    const strs: string[] = [];
    filterConditions(q, where, strs);
    const sql = `SELECT ${EVENT_COLUMNS} FROM events e WHERE ${where.join(" AND ")}
      ORDER BY e.stream ${back ? "DESC" : "ASC"} LIMIT ?`;
    return this.#conn()
      .q(sql)
      .all(...params, ...strs, q.limit)
      .map(eventFromRow);
  }

  async getRoomMaxStreams(roomIds: string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (roomIds.length === 0) return out;
    // A correlated max() per room is one index seek each (GROUP BY would walk every event of every room).
    const rows = this.#conn()
      .q(
        `SELECT j.value AS room_id, (SELECT max(e.stream) FROM events e WHERE e.room_id = j.value) AS m
         FROM json_each(?) j`,
      )
      .all(JSON.stringify(roomIds)) as any[];
    for (const r of rows) if (r.m !== null) out.set(r.room_id, r.m);
    return out;
  }

  async countEvents(
    roomId: string,
    afterStream: number,
    uptoStream: number,
    excludeSender: string,
    types: string[],
  ): Promise<number> {
    if (types.length === 0 || uptoStream <= afterStream) return 0;
    const strs: string[] = [];
    const cond = typeCondition(types, strs);
    const r = this.#conn()
      .q(
        `SELECT count(*) AS n FROM events e WHERE e.room_id = ? AND e.stream > ? AND e.stream <= ? AND e.sender <> ?
         AND ${TIMELINE} AND ${cond}`,
      )
      .get(roomId, afterStream, uptoStream, excludeSender, ...strs) as any;
    return r.n;
  }

  // ---- batched reads ----

  async getLatestEventsPerRoom(
    windows: RoomStreamWindow[],
    limit: number,
    filter: EventFilterQuery = {},
  ): Promise<StoredEvent[][]> {
    if (windows.length === 0 || limit <= 0) return windows.map(() => []);
    const where = ["e.room_id = w.value ->> 0", "e.stream < w.value ->> 1", "e.stream > w.value ->> 2", TIMELINE];
    const strs: string[] = [];
    filterConditions(filter, where, strs);
    // The correlated LIMIT subquery is SQLite's LATERAL: one backward walk of events_room_stream per window.
    const sql = `SELECT w.key AS idx, ${EVENT_COLUMNS} FROM json_each(?) w
      JOIN events e ON e.stream IN (
        SELECT e.stream FROM events e WHERE ${where.join(" AND ")} ORDER BY e.stream DESC LIMIT ?)
      ORDER BY w.key, e.stream DESC`;
    const json = JSON.stringify(windows.map((w) => [w.roomId, w.before, w.after ?? -1]));
    return byIndex(
      windows.length,
      this.#conn()
        .q(sql)
        .all(json, ...strs, limit),
      eventFromRow,
      0,
    );
  }

  async getStatesAt(points: RoomAt[], types?: string[]): Promise<StoredEvent[][]> {
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
    return byIndex(
      points.length,
      this.#conn()
        .q(sql)
        .all(...params),
      eventFromRow,
      0,
    );
  }

  async getStateHistories(keys: RoomStateKey[]): Promise<StoredEvent[][]> {
    if (keys.length === 0) return [];
    // state_history's primary key (room_id, type, state_key, stream) serves each key as one range scan.
    const sql = `SELECT k.key AS idx, ${EVENT_COLUMNS} FROM json_each(?) k
      JOIN state_history h ON h.room_id = k.value ->> 0 AND h.type = k.value ->> 1 AND h.state_key = k.value ->> 2
      JOIN events e ON e.stream = h.stream
      ORDER BY k.key, h.stream`;
    const json = JSON.stringify(keys.map((k) => [k.roomId, k.type, k.stateKey]));
    return byIndex(keys.length, this.#conn().q(sql).all(json), eventFromRow, 0);
  }

  async countEventsPerRoom(ranges: RoomStreamRange[], excludeSender: string, types: string[]): Promise<number[]> {
    if (ranges.length === 0 || types.length === 0) return ranges.map(() => 0);
    const strs: string[] = [];
    const cond = typeCondition(types, strs);
    const rows = this.#conn()
      .q(
        `SELECT p.key AS idx, (SELECT count(*) FROM events e WHERE e.room_id = p.value ->> 0
           AND e.stream > p.value ->> 1 AND e.stream <= p.value ->> 2 AND e.sender <> ? AND ${TIMELINE} AND ${cond}) AS n
         FROM json_each(?) p`,
      )
      .all(excludeSender, ...strs, JSON.stringify(ranges.map((r) => [r.roomId, r.after, r.upto]))) as any[];
    const out = ranges.map(() => 0);
    for (const r of rows) out[Number(r.idx)] = Number(r.n);
    return out;
  }
}

function insertEvent(d: SqliteDb, e: NewEvent): void {
  const plan = planEventState(e);
  try {
    d.run(
      `INSERT INTO events (stream, event_id, room_id, type, state_key, sender, origin_server_ts, depth, contains_url,
         pdu, txn_device_id, txn_id, state_before, state_after, state_only)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
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
      plan ? (plan.before ?? 0) : null,
      plan ? (plan.after ?? 0) : null,
      e.stateOnly ? 1 : 0,
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
  const rel = e.stateOnly ? null : relationOf(e.pdu);
  if (rel !== null) {
    d.run(
      `INSERT INTO event_relations (event_id, room_id, relates_to, rel_type, aggregation_key, sender, type, stream)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      e.eventId,
      e.roomId,
      rel.relatesTo,
      rel.relType,
      rel.key,
      e.sender,
      e.type,
      e.stream,
    );
  }
  if (e.type === "m.room.redaction") {
    const target = redactsOf(e.pdu);
    // The first redaction wins; a later one changes nothing a client could see.
    if (target !== null) {
      d.run("UPDATE events SET redacted_by = ? WHERE event_id = ? AND redacted_by IS NULL", e.eventId, target);
      // A redacted event no longer relates to anything (its content is gone): out of every aggregation.
      d.run("DELETE FROM event_relations WHERE event_id = ?", target);
    }
  }
  insertDag(d, e, plan);
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

/** The event's part of the room DAG (DagStore in types.ts): edges, forward extremities, state groups. */
function insertDag(d: SqliteDb, e: NewEvent, plan: StatePlan | null): void {
  const prevs = idList(e.pdu.prev_events);
  d.run("DELETE FROM event_outliers WHERE event_id = ?", e.eventId);
  // Plain single-row statements: a local send has one prev, and json_each's setup would cost more than the row.
  for (const prev of prevs)
    d.run("INSERT OR IGNORE INTO event_edges (event_id, prev_id) VALUES (?, ?)", e.eventId, prev);
  // Auth chains only pass through state events: a message's auth events are read from its PDU (DagStore).
  if (e.stateKey !== null)
    for (const auth of idList(e.pdu.auth_events))
      d.run("INSERT OR IGNORE INTO event_auth_edges (event_id, auth_id) VALUES (?, ?)", e.eventId, auth);
  // An event some stored event already names as a prev (a late arrival) is not at the DAG's edge.
  const orphan = "NOT EXISTS (SELECT 1 FROM event_edges WHERE prev_id = ?)";
  // The common case in one statement: the single prev was the extremity, and the event takes its place.
  const replaced =
    prevs.length === 1 &&
    d.run(
      `UPDATE forward_extremities SET event_id = ? WHERE room_id = ? AND event_id = ? AND ${orphan}`,
      e.eventId,
      e.roomId,
      prevs[0],
      e.eventId,
    ).changes === 1;
  if (!replaced) {
    d.run(
      `DELETE FROM forward_extremities WHERE room_id = ? AND event_id IN ${IN_JSON}`,
      e.roomId,
      JSON.stringify(prevs),
    );
    d.run(
      `INSERT OR IGNORE INTO forward_extremities (room_id, event_id) SELECT ?, ? WHERE ${orphan}`,
      e.roomId,
      e.eventId,
      e.eventId,
    );
  }
  if (!plan) return;
  for (const g of plan.groups) {
    d.run(
      "INSERT INTO state_groups (id, room_id, prev_id, chain) VALUES (?, ?, ?, ?)",
      g.id,
      e.roomId,
      g.prev,
      g.chain,
    );
    if (g.copyFrom !== null) d.run(COPY_GROUP_STATE, ...copyParams(g));
    for (const x of g.entries)
      d.run(
        "INSERT INTO state_group_state (group_id, type, state_key, event_id) VALUES (?, ?, ?, ?)",
        g.id,
        x.type,
        x.stateKey,
        x.eventId,
      );
  }
}
