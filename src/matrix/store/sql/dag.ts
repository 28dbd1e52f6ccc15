/**
 * The DagStore on both backends (the SQL reads alike): edges, forward extremities, outliers, state groups. The
 * timeline-event half of the writes is in each backend's persist path (sqlite/events.ts, postgres/events.ts),
 * inside the event's own transaction; the plan and the chain walk are in ../dag.ts.
 */
import { type StateKey, stateKey } from "../../events/auth.ts";
import { GROUP_STATE, idList } from "../dag.ts";
import type { Sql, SqlParam } from "../sql.ts";
import type { DagEvent, DagStore, EventStateGroups, NewOutlier } from "../types.ts";

const DAG_COLUMNS = "event_id, room_id, type, state_key, sender, depth, pdu";

function dagEventFromRow(r: any): DagEvent {
  return {
    eventId: r.event_id,
    roomId: r.room_id,
    type: r.type,
    stateKey: r.state_key,
    sender: r.sender,
    depth: Number(r.depth),
    pdu: JSON.parse(r.pdu),
    stream: r.stream === null ? null : Number(r.stream),
    rejected: r.rejected ?? null,
  };
}

/** events.state_before/state_after: 0 is the empty state (no stream position is 0). */
const group = (v: unknown): number | null => (Number(v) === 0 ? null : Number(v));

/** State at stream position `?3` of room `?1` (= `?2`) from state_history: events stored before the DAG. */
const HISTORY_STATE = `SELECT h.type, h.state_key, h.event_id FROM state_history h
  WHERE h.room_id = ? AND h.stream IN (
    SELECT max(h2.stream) FROM state_history h2 WHERE h2.room_id = ? AND h2.stream <= ? GROUP BY h2.type, h2.state_key)`;

export class SqlDagStore implements DagStore {
  readonly #sql: Sql;
  constructor(sql: Sql) {
    this.#sql = sql;
  }

  async getForwardExtremities(roomId: string): Promise<{ eventId: string; depth: number }[]> {
    const rows = await this.#sql.all(
      `SELECT f.event_id, e.depth FROM forward_extremities f JOIN events e ON e.event_id = f.event_id
       WHERE f.room_id = ? ORDER BY e.depth DESC, e.stream DESC`,
      [roomId],
    );
    return rows.map((r) => ({ eventId: r.event_id, depth: Number(r.depth) }));
  }

  async setForwardExtremities(roomId: string, eventIds: string[]): Promise<void> {
    await this.#sql.atomic([
      ["DELETE FROM forward_extremities WHERE room_id = ?", [roomId]],
      ...idList(eventIds).map((id): [string, SqlParam[]] => [
        "INSERT INTO forward_extremities (room_id, event_id) VALUES (?, ?)",
        [roomId, id],
      ]),
    ]);
  }

  async setCurrentState(roomId: string, state: ReadonlyMap<StateKey, string>): Promise<number> {
    const rows = await this.#sql.all("SELECT type, state_key, event_id FROM current_state WHERE room_id = ?", [roomId]);
    const have = new Map<StateKey, string>(rows.map((r) => [stateKey(r.type, r.state_key), r.event_id]));
    const changed = [...state].filter(([k, id]) => have.get(k) !== id).map(([, id]) => id);
    const removed = [...have.keys()].filter((k) => !state.has(k));
    if (changed.length === 0 && removed.length === 0) return 0;
    const events = changed.length
      ? await this.#sql.all(
          `SELECT event_id, type, state_key, stream, pdu FROM events WHERE event_id IN (${changed.map(() => "?").join(", ")})`,
          changed,
        )
      : [];
    const stmts: [string, SqlParam[]][] = [];
    for (const e of events) {
      if (e.state_key === null) continue;
      stmts.push([
        `INSERT INTO current_state (room_id, type, state_key, stream, event_id) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (room_id, type, state_key) DO UPDATE SET stream = excluded.stream, event_id = excluded.event_id`,
        [roomId, e.type, e.state_key, Number(e.stream), e.event_id],
      ]);
      const membership = e.type === "m.room.member" ? JSON.parse(e.pdu).content?.membership : undefined;
      if (typeof membership === "string")
        stmts.push([
          `INSERT INTO memberships (room_id, user_id, membership, event_id, stream) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (room_id, user_id) DO UPDATE SET membership = excluded.membership, event_id = excluded.event_id,
             stream = excluded.stream`,
          [roomId, e.state_key, membership, e.event_id, Number(e.stream)],
        ]);
    }
    for (const k of removed) {
      const sep = k.indexOf("\u0000");
      const type = k.slice(0, sep);
      const sk = k.slice(sep + 1);
      stmts.push(["DELETE FROM current_state WHERE room_id = ? AND type = ? AND state_key = ?", [roomId, type, sk]]);
      if (type === "m.room.member")
        stmts.push(["DELETE FROM memberships WHERE room_id = ? AND user_id = ?", [roomId, sk]]);
    }
    if (stmts.length) await this.#sql.atomic(stmts);
    return events.length + removed.length;
  }

  async #edges(table: string, col: string, eventIds: string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    if (eventIds.length === 0) return out;
    const rows = await this.#sql.all(
      `SELECT event_id, ${col} AS id FROM ${table} WHERE ${this.#sql.anyOf("event_id")} ORDER BY event_id, ${col}`,
      [eventIds],
    );
    for (const r of rows) {
      const list = out.get(r.event_id);
      if (list) list.push(r.id);
      else out.set(r.event_id, [r.id]);
    }
    return out;
  }

  getPrevEvents(eventIds: string[]): Promise<Map<string, string[]>> {
    return this.#edges("event_edges", "prev_id", eventIds);
  }

  async getAuthEvents(eventIds: string[]): Promise<Map<string, string[]>> {
    // From the PDUs: event_auth_edges holds state events' and outliers' edges only (the auth chain's walk).
    const out = new Map<string, string[]>();
    if (eventIds.length === 0) return out;
    const rows = await this.#sql.all(
      `SELECT event_id, pdu FROM events WHERE ${this.#sql.anyOf("event_id")}
       UNION ALL SELECT event_id, pdu FROM event_outliers WHERE ${this.#sql.anyOf("event_id")}`,
      [eventIds, eventIds],
    );
    for (const r of rows) {
      const ids = idList(JSON.parse(r.pdu).auth_events).sort();
      if (ids.length) out.set(r.event_id, ids);
    }
    return out;
  }

  async getMissingEvents(eventIds: string[]): Promise<string[]> {
    if (eventIds.length === 0) return [];
    const rows = await this.#sql.all(
      `SELECT event_id FROM events WHERE ${this.#sql.anyOf("event_id")}
       UNION SELECT event_id FROM event_outliers WHERE ${this.#sql.anyOf("event_id")}`,
      [eventIds, eventIds],
    );
    const have = new Set(rows.map((r) => r.event_id as string));
    return eventIds.filter((id) => !have.has(id));
  }

  async getAuthChain(eventIds: string[]): Promise<string[]> {
    // The first step from the PDUs (the inputs may be messages), then the walk over the stored auth edges; UNION
    // (not UNION ALL) drops rows already found, so the walk ends even on a (forged) cycle.
    const seeds = [...new Set([...(await this.getAuthEvents(eventIds)).values()].flat())];
    if (seeds.length === 0) return [];
    const rows = await this.#sql.all(
      `WITH RECURSIVE chain(id) AS (
         SELECT a.auth_id FROM event_auth_edges a WHERE ${this.#sql.anyOf("a.event_id")}
         UNION
         SELECT a.auth_id FROM chain c JOIN event_auth_edges a ON a.event_id = c.id
       ) SELECT id FROM chain`,
      [seeds],
    );
    return [...new Set([...seeds, ...rows.map((r) => r.id as string)])].sort();
  }

  async getDagEvents(eventIds: string[]): Promise<DagEvent[]> {
    if (eventIds.length === 0) return [];
    const rows = await this.#sql.all(
      `SELECT ${DAG_COLUMNS}, stream, NULL AS rejected FROM events WHERE ${this.#sql.anyOf("event_id")}
       UNION ALL
       SELECT ${DAG_COLUMNS}, NULL AS stream, rejected FROM event_outliers WHERE ${this.#sql.anyOf("event_id")}`,
      [eventIds, eventIds],
    );
    return rows.map(dagEventFromRow);
  }

  async persistOutliers(events: NewOutlier[]): Promise<void> {
    const statements: [string, SqlParam[]][] = [];
    for (const e of events) {
      statements.push([
        `INSERT INTO event_outliers (${DAG_COLUMNS}, origin_server_ts, rejected)
         SELECT ?, ?, ?, ?, ?, CAST(? AS BIGINT), ?, CAST(? AS BIGINT), ? WHERE NOT EXISTS (SELECT 1 FROM events WHERE event_id = ?)
         ON CONFLICT (event_id) DO NOTHING`,
        [
          e.eventId,
          e.roomId,
          e.type,
          e.stateKey,
          e.sender,
          e.depth,
          JSON.stringify(e.pdu),
          e.originServerTs,
          e.rejected ?? null,
          e.eventId,
        ],
      ]);
      for (const auth of idList(e.pdu.auth_events))
        statements.push([
          "INSERT INTO event_auth_edges (event_id, auth_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
          [e.eventId, auth],
        ]);
    }
    if (statements.length) await this.#sql.atomic(statements);
  }

  async setEventStateAfter(eventId: string, group: number): Promise<boolean> {
    const changed = await this.#sql.run(
      `UPDATE events SET state_after = ? WHERE event_id = ?
       AND room_id = (SELECT g.room_id FROM state_groups g WHERE g.id = ?)`,
      [group, eventId, group],
    );
    return changed === 1;
  }

  async getEventStateGroups(eventId: string): Promise<EventStateGroups | null> {
    const r = await this.#sql.get(
      `SELECT e.state_before, e.state_after, g.chain FROM events e LEFT JOIN state_groups g ON g.id = e.state_after
       WHERE e.event_id = ?`,
      [eventId],
    );
    if (!r || r.state_after === null) return null;
    return { before: group(r.state_before), after: group(r.state_after), afterChain: Number(r.chain ?? 0) };
  }

  async ensureEventStateGroups(eventId: string): Promise<EventStateGroups | null> {
    const known = await this.getEventStateGroups(eventId);
    if (known) return known;
    const ev = await this.#sql.get("SELECT stream, room_id, type, state_key FROM events WHERE event_id = ?", [eventId]);
    if (!ev) return null;
    const stream = Number(ev.stream);
    const before = -stream;
    const after = ev.state_key === null ? before : stream;
    // Every insert tolerates a concurrent backfill of the same event: the rows would be identical.
    const statements: [string, SqlParam[]][] = [
      [
        "INSERT INTO state_groups (id, room_id, prev_id, chain) VALUES (?, ?, NULL, 0) ON CONFLICT DO NOTHING",
        [before, ev.room_id],
      ],
      [
        `INSERT INTO state_group_state (group_id, type, state_key, event_id)
         SELECT CAST(? AS BIGINT), y.type, y.state_key, y.event_id FROM (${HISTORY_STATE}) y WHERE true
         ON CONFLICT DO NOTHING`,
        [before, ev.room_id, ev.room_id, stream - 1],
      ],
    ];
    if (after !== before)
      statements.push(
        [
          "INSERT INTO state_groups (id, room_id, prev_id, chain) VALUES (?, ?, ?, 1) ON CONFLICT DO NOTHING",
          [after, ev.room_id, before],
        ],
        [
          "INSERT INTO state_group_state (group_id, type, state_key, event_id) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
          [after, ev.type, ev.state_key, eventId],
        ],
      );
    statements.push([
      "UPDATE events SET state_before = ?, state_after = ? WHERE event_id = ? AND state_after IS NULL",
      [before, after, eventId],
    ]);
    await this.#sql.atomic(statements);
    return this.getEventStateGroups(eventId);
  }

  async getStateGroup(id: number): Promise<Map<StateKey, string>> {
    return toMap(await this.#sql.all(GROUP_STATE, [id]));
  }

  async getStateIdsAtEvent(eventId: string, at: "before" | "after"): Promise<Map<StateKey, string> | null> {
    const groups = await this.getEventStateGroups(eventId);
    if (groups) {
      const g = at === "before" ? groups.before : groups.after;
      return g === null ? new Map() : this.getStateGroup(g);
    }
    // A timeline event stored before the DAG: its room was linear, so state_history at its position is its state.
    const ev = await this.#sql.get("SELECT stream, room_id FROM events WHERE event_id = ?", [eventId]);
    if (!ev) return null;
    const upto = Number(ev.stream) - (at === "before" ? 1 : 0);
    return toMap(await this.#sql.all(HISTORY_STATE, [ev.room_id, ev.room_id, upto]));
  }

  async getStateEventsAtEvent(eventId: string, at: "before" | "after"): Promise<DagEvent[] | null> {
    const ids = await this.getStateIdsAtEvent(eventId, at);
    if (!ids) return null;
    const events = await this.getDagEvents([...ids.values()]);
    return events.sort((a, b) => (a.type === b.type ? cmp(a.stateKey ?? "", b.stateKey ?? "") : cmp(a.type, b.type)));
  }
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function toMap(rows: any[]): Map<StateKey, string> {
  const out = new Map<StateKey, string>();
  for (const r of rows) out.set(stateKey(r.type, r.state_key), r.event_id);
  return out;
}
