/**
 * The RelationStore in SQL both dialects read alike (WITH RECURSIVE, GROUP BY). Rows are written by each backend's
 * persist path (sqlite/events.ts, postgres/events.ts) in the event's own transaction.
 */
import { EVENT_COLUMNS, eventFromRow } from "../rows.ts";
import type { Sql, SqlParam } from "../sql.ts";
import type { RelationQuery, RelationRow, RelationStore, StoredEvent, ThreadSummaryRow } from "../types.ts";

const relationFromRow = (r: any): RelationRow => ({
  eventId: r.event_id,
  roomId: r.room_id,
  relatesTo: r.relates_to,
  relType: r.rel_type,
  key: r.aggregation_key ?? null,
  sender: r.sender,
  type: r.type,
  stream: Number(r.stream),
});

export class SqlRelationStore implements RelationStore {
  private readonly sql: Sql;
  constructor(sql: Sql) {
    this.sql = sql;
  }

  async getRelatedEvents(q: RelationQuery): Promise<StoredEvent[]> {
    const params: SqlParam[] = [q.eventId, q.depth, q.roomId];
    const where = ["e.room_id = ?"];
    if (q.relType !== undefined) {
      where.push("r.rel_type = ?");
      params.push(q.relType);
    }
    if (q.eventType !== undefined) {
      where.push("e.type = ?");
      params.push(q.eventType);
    }
    where.push(q.dir === "b" ? "e.stream < ?" : "e.stream > ?");
    params.push(q.from);
    if (q.to !== undefined) {
      where.push(q.dir === "b" ? "e.stream > ?" : "e.stream < ?");
      params.push(q.to);
    }
    params.push(q.limit);
    // Synapse's shape: the tree is walked unfiltered, the filters apply to every level's events.
    const rows = await this.sql.all(
      `WITH RECURSIVE tree(event_id, depth) AS (
         SELECT event_id, 1 FROM event_relations WHERE relates_to = ?
         UNION
         SELECT c.event_id, t.depth + 1 FROM event_relations c JOIN tree t ON c.relates_to = t.event_id
         WHERE t.depth < ?
       )
       SELECT ${EVENT_COLUMNS} FROM tree t
       JOIN event_relations r ON r.event_id = t.event_id
       JOIN events e ON e.event_id = t.event_id
       WHERE ${where.join(" AND ")}
       ORDER BY e.stream ${q.dir === "b" ? "DESC" : "ASC"} LIMIT ?`,
      params,
    );
    return rows.map(eventFromRow);
  }

  async getRelationsOf(parentIds: string[], relTypes: string[]): Promise<RelationRow[]> {
    if (parentIds.length === 0 || relTypes.length === 0) return [];
    const rows = await this.sql.all(
      `SELECT event_id, room_id, relates_to, rel_type, aggregation_key, sender, type, stream FROM event_relations
       WHERE ${this.sql.anyOf("relates_to")} AND ${this.sql.anyOf("rel_type")} ORDER BY stream`,
      [parentIds, relTypes],
    );
    return rows.map(relationFromRow);
  }

  async getThreadSummaries(rootIds: string[], userId: string): Promise<ThreadSummaryRow[]> {
    if (rootIds.length === 0) return [];
    const rows = await this.sql.all(
      `SELECT t.relates_to, t.n, t.latest, t.mine, l.event_id FROM (
         SELECT relates_to, count(*) AS n, max(stream) AS latest,
           max(CASE WHEN sender = ? THEN 1 ELSE 0 END) AS mine
         FROM event_relations WHERE rel_type = 'm.thread' AND ${this.sql.anyOf("relates_to")}
         GROUP BY relates_to
       ) t JOIN events l ON l.stream = t.latest`,
      [userId, rootIds],
    );
    return rows.map((r) => ({
      rootId: r.relates_to,
      count: Number(r.n),
      latestEventId: r.event_id,
      latestStream: Number(r.latest),
      participated: Number(r.mine) === 1,
    }));
  }

  async getThreads(q: {
    roomId: string;
    before: number;
    limit: number;
    participant?: string;
  }): Promise<{ rootId: string; latestStream: number }[]> {
    const params: SqlParam[] = [q.roomId, q.before];
    let mine = "";
    if (q.participant !== undefined) {
      mine = `AND (max(CASE WHEN r.sender = ? THEN 1 ELSE 0 END) = 1
        OR EXISTS (SELECT 1 FROM events e WHERE e.event_id = r.relates_to AND e.sender = ?))`;
      params.push(q.participant, q.participant);
    }
    params.push(q.limit);
    const rows = await this.sql.all(
      `SELECT r.relates_to, max(r.stream) AS latest FROM event_relations r
       WHERE r.room_id = ? AND r.rel_type = 'm.thread'
       GROUP BY r.relates_to HAVING max(r.stream) < ? ${mine}
       ORDER BY latest DESC LIMIT ?`,
      params,
    );
    return rows.map((r) => ({ rootId: r.relates_to, latestStream: Number(r.latest) }));
  }

  async getThreadReplies(
    roomIds: string[],
    after: number,
    upto: number,
    excludeSender: string,
    limit: number,
  ): Promise<RelationRow[]> {
    if (roomIds.length === 0) return [];
    const rows = await this.sql.all(
      `SELECT event_id, room_id, relates_to, rel_type, aggregation_key, sender, type, stream FROM event_relations
       WHERE ${this.sql.anyOf("room_id")} AND rel_type = 'm.thread' AND stream > ? AND stream <= ? AND sender <> ?
       ORDER BY stream DESC LIMIT ?`,
      [roomIds, after, upto, excludeSender, limit],
    );
    return rows.map(relationFromRow);
  }

  async hasAnnotation(parentId: string, sender: string, type: string, key: string): Promise<boolean> {
    const r = await this.sql.get(
      `SELECT 1 AS x FROM event_relations WHERE relates_to = ? AND rel_type = 'm.annotation' AND sender = ?
       AND type = ? AND aggregation_key = ?`,
      [parentId, sender, type, key],
    );
    return Boolean(r);
  }
}
