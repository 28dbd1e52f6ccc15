/**
 * The EventStore on PostgreSQL: the one-statement persist path, filtered timeline reads and the batched reads (one
 * round trip for many rooms: /sync over hundreds of rooms); the reads both dialects share are in sql/events.ts.
 * Batched inputs travel as parallel arrays unnested WITH ORDINALITY; `idx` (1-based) groups the rows back.
 */
import type pg from "pg";
import { AmiError } from "../../../core/errors.ts";
import type { TxTurn } from "../../stream.ts";
import { containsUrl, membershipOf, redactsOf, relationOf, splitTypes, toLike } from "../common.ts";
import { COPY_GROUP_STATE, copyParams, idList, planEventState } from "../dag.ts";
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
import { isForeignKeyViolation, isUniqueViolation, numberPlaceholders, type PgDb, PgSql } from "./db.ts";

/**
 * persistEvent as ONE statement: data-modifying CTEs run together and atomically, so the whole write is one
 * round trip and one commit (optional parts are skipped by their WHERE on a NULL parameter).
 */
const PERSIST = `
WITH ev AS (
  INSERT INTO events (stream, event_id, room_id, type, state_key, sender, origin_server_ts, depth, contains_url, pdu,
    txn_device_id, txn_id, state_before, state_after, state_only)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $29, $30, $31)
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
), rl AS (
  INSERT INTO event_relations (event_id, room_id, relates_to, rel_type, aggregation_key, sender, type, stream)
  SELECT $2, $3, $17, $18, $19, $6, $4, $1 WHERE $17::text IS NOT NULL
), rr AS (
  DELETE FROM event_relations WHERE $14::text IS NOT NULL AND event_id = $14
), eo AS (
  DELETE FROM event_outliers WHERE event_id = $2
), pe AS (
  INSERT INTO event_edges (event_id, prev_id) SELECT $2, unnest($20::text[]) ON CONFLICT DO NOTHING
), ae AS (
  INSERT INTO event_auth_edges (event_id, auth_id) SELECT $2, unnest($21::text[]) ON CONFLICT DO NOTHING
), fd AS (
  DELETE FROM forward_extremities WHERE room_id = $3 AND event_id = ANY($20::text[])
), fi AS (
  INSERT INTO forward_extremities (room_id, event_id)
  SELECT $3, $2 WHERE NOT EXISTS (SELECT 1 FROM event_edges WHERE prev_id = $2)
), sg AS (
  INSERT INTO state_groups (id, room_id, prev_id, chain)
  SELECT g.id, $3, g.prev, g.chain FROM unnest($22::bigint[], $23::bigint[], $24::int[]) AS g(id, prev, chain)
), ss AS (
  INSERT INTO state_group_state (group_id, type, state_key, event_id)
  SELECT * FROM unnest($25::bigint[], $26::text[], $27::text[], $28::text[])
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
  ...relationParams(e),
  ...dagParams(e),
  e.stateOnly ? 1 : 0,
];

/** $20..$30: prev and auth edges, the state groups the event creates (snapshots copy separately), its groups. */
function dagParams(e: NewEvent): unknown[] {
  const plan = planEventState(e);
  const groups = plan?.groups ?? [];
  const entries = groups.flatMap((g) => g.entries.map((x) => [g.id, x.type, x.stateKey, x.eventId] as const));
  return [
    idList(e.pdu.prev_events),
    // Auth chains only pass through state events: a message's auth events are read from its PDU.
    e.stateKey === null ? [] : idList(e.pdu.auth_events),
    groups.map((g) => g.id),
    groups.map((g) => g.prev),
    groups.map((g) => g.chain),
    entries.map((x) => x[0]),
    entries.map((x) => x[1]),
    entries.map((x) => x[2]),
    entries.map((x) => x[3]),
    // The events row's state_before/state_after: 0 is the empty state, NULL none recorded.
    plan ? (plan.before ?? 0) : null,
    plan ? (plan.after ?? 0) : null,
  ];
}

/** The snapshot copies (rebasing a long delta chain) an event's persist needs after PERSIST, in its transaction. */
const snapshots = (e: NewEvent) => (planEventState(e)?.groups ?? []).filter((g) => g.copyFrom !== null);

/** $17..$19: relates_to, rel_type and annotation key of the event's relation (NULLs without one). */
function relationParams(e: NewEvent): (string | null)[] {
  const rel = e.stateOnly ? null : relationOf(e.pdu);
  return rel ? [rel.relatesTo, rel.relType, rel.key] : [null, null, null];
}

function persistError(err: unknown, e: NewEvent): unknown {
  if (isUniqueViolation(err))
    return new AmiError("M_UNKNOWN", `event ${e.eventId}, stream position ${e.stream} or its txnId already persisted`);
  if (isForeignKeyViolation(err)) return new AmiError("M_UNKNOWN", `room ${e.roomId} is not in the store`);
  return err;
}

/** SQL condition for "type matches one of `types`" (exact, or "*" patterns via LIKE ANY); pushes its params. */
function typeCondition(types: string[], params: unknown[]): string {
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

export class PostgresEventStore extends SqlEventReads implements EventStore {
  readonly #conn: () => PgDb;
  /** `conn` throws once the store is closed. */
  constructor(conn: () => PgDb) {
    super(new PgSql(conn));
    this.#conn = conn;
  }

  async persistEvent(e: NewEvent): Promise<void> {
    if (snapshots(e).length) return this.#persistInTx([e]);
    try {
      await this.#conn().query(PERSIST, persistParams(e));
    } catch (err) {
      throw persistError(err, e);
    }
  }

  /** Several events in one transaction (one commit, so one WAL flush, for all of them): all or none. */
  async persistEvents(events: NewEvent[]): Promise<void> {
    if (events.length === 0) return;
    if (events.length === 1) return this.persistEvent(events[0]);
    return this.#persistInTx(events);
  }

  async #persistInTx(events: NewEvent[]): Promise<void> {
    const d = this.#conn();
    await d.tx(async (c) => {
      for (const e of events) await this.#write(d, e, c);
    });
  }

  /** One event's row and its state snapshots, on the transaction's client. */
  async #write(d: PgDb, e: NewEvent, c: pg.PoolClient): Promise<void> {
    try {
      await d.query(PERSIST, persistParams(e), c);
      for (const g of snapshots(e)) await d.query(numberPlaceholders(COPY_GROUP_STATE), copyParams(g), c);
    } catch (err) {
      throw persistError(err, e);
    }
  }

  /**
   * persistEvents in a turn of the stream shared by several processes (cluster/positions.ts): the turn's
   * statements go with BEGIN (its busy lock and the positions) and with COMMIT (its probe), so it costs no round
   * trip of its own. Returns the events' positions, in order.
   */
  async persistInTurn(events: Array<Omit<NewEvent, "stream">>, turn: TxTurn): Promise<number[]> {
    const d = this.#conn();
    return d.txOwn(async (c) => {
      const opened = (await c.query(`BEGIN; ${turn.open}`)) as unknown as pg.QueryResult[];
      const ps = turn.opened(opened[opened.length - 1].rows);
      for (const [i, ev] of events.entries()) await this.#write(d, { ...ev, stream: ps[i] } as NewEvent, c);
      turn.closing();
      const closed = (await c.query(`${turn.close}; COMMIT`)) as unknown as pg.QueryResult[];
      turn.committed(closed.slice(0, -1));
      return ps;
    });
  }

  async getReplacedState(streams: number[]): Promise<Map<number, StoredEvent>> {
    const d = this.#conn();
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

  async getRoomEvents(q: RoomEventQuery): Promise<StoredEvent[]> {
    const d = this.#conn();
    if (q.limit <= 0) return [];
    const back = q.dir === "b";
    const params: unknown[] = [q.roomId, q.from];
    const where = ["e.room_id = $1", back ? "e.stream < $2" : "e.stream > $2", TIMELINE];
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

  async getRoomMaxStreams(roomIds: string[]): Promise<Map<string, number>> {
    const d = this.#conn();
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

  async countEvents(
    roomId: string,
    afterStream: number,
    uptoStream: number,
    excludeSender: string,
    types: string[],
  ): Promise<number> {
    const d = this.#conn();
    if (types.length === 0 || uptoStream <= afterStream) return 0;
    const params: unknown[] = [roomId, afterStream, uptoStream, excludeSender];
    const cond = typeCondition(types, params);
    const r = await d.row(
      `SELECT count(*) AS n FROM events e WHERE e.room_id = $1 AND e.stream > $2 AND e.stream <= $3 AND e.sender <> $4
       AND ${TIMELINE} AND ${cond}`,
      params,
    );
    return r.n;
  }

  // ---- batched reads ----

  async getLatestEventsPerRoom(
    windows: RoomStreamWindow[],
    limit: number,
    filter: EventFilterQuery = {},
  ): Promise<StoredEvent[][]> {
    const d = this.#conn();
    if (windows.length === 0 || limit <= 0) return windows.map(() => []);
    const params: unknown[] = [
      windows.map((w) => w.roomId),
      windows.map((w) => w.before),
      windows.map((w) => w.after ?? -1),
    ];
    const where = ["e.room_id = w.room_id", "e.stream < w.before", "e.stream > w.after", TIMELINE];
    filterConditions(filter, where, params);
    params.push(limit);
    // LATERAL: one backward walk of events_room_stream per window, stopping after `limit` matches.
    const sql = `SELECT w.idx, ${EVENT_COLUMNS}
      FROM unnest($1::text[], $2::bigint[], $3::bigint[]) WITH ORDINALITY AS w(room_id, before, after, idx)
      CROSS JOIN LATERAL (
        SELECT * FROM events e WHERE ${where.join(" AND ")} ORDER BY e.stream DESC LIMIT $${params.length}) e
      ORDER BY w.idx, e.stream DESC`;
    return byIndex(windows.length, await d.rows(sql, params), eventFromRow, 1);
  }

  async getStatesAt(points: RoomAt[], types?: string[]): Promise<StoredEvent[][]> {
    const d = this.#conn();
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
    return byIndex(points.length, await d.rows(sql, params), eventFromRow, 1);
  }

  async getStateHistories(keys: RoomStateKey[]): Promise<StoredEvent[][]> {
    const d = this.#conn();
    if (keys.length === 0) return [];
    const params = [keys.map((k) => k.roomId), keys.map((k) => k.type), keys.map((k) => k.stateKey)];
    // state_history's primary key (room_id, type, state_key, stream) serves each key as one range scan.
    const sql = `SELECT k.idx, ${EVENT_COLUMNS}
      FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS k(room_id, type, state_key, idx)
      JOIN state_history h ON h.room_id = k.room_id AND h.type = k.type AND h.state_key = k.state_key
      JOIN events e ON e.stream = h.stream
      ORDER BY k.idx, h.stream`;
    return byIndex(keys.length, await d.rows(sql, params), eventFromRow, 1);
  }

  async countEventsPerRoom(ranges: RoomStreamRange[], excludeSender: string, types: string[]): Promise<number[]> {
    const d = this.#conn();
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
         AND e.stream <= p.upto AND e.sender <> $4 AND ${TIMELINE} AND ${cond}) AS n
       FROM unnest($1::text[], $2::bigint[], $3::bigint[]) WITH ORDINALITY AS p(room_id, after, upto, idx)`,
      params,
    );
    const out = ranges.map(() => 0);
    for (const r of rows) out[Number(r.idx) - 1] = Number(r.n);
    return out;
  }
}
