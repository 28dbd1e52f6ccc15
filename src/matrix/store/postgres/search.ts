/**
 * The SearchStore on PostgreSQL: event_search's GIN-indexed tsvectors (kept by a trigger on events: schema.ts), a
 * prefix tsquery per word, ts_rank; the user directory is shared SQL (sql/search.ts).
 */
import { EVENT_COLUMNS, eventFromRow } from "../rows.ts";
import { TIMELINE } from "../sql/events.ts";
import { SqlUserDirectory } from "../sql/search.ts";
import { type EventSearchQuery, SEARCH_KEYS, type SearchHit, type SearchStore } from "../types.ts";
import { type PgDb, PgSql } from "./db.ts";
import { filterConditions } from "./events.ts";

/** Each word a prefix lexeme, all required (the words hold only letters and digits). */
export const tsQuery = (words: string[]): string => words.map((w) => `${w}:*`).join(" & ");

export class PostgresSearchStore extends SqlUserDirectory implements SearchStore {
  readonly #conn: () => PgDb;
  constructor(conn: () => PgDb) {
    super(new PgSql(conn), "(j.pdu::jsonb->'content'->>'join_rule')");
    this.#conn = conn;
  }

  async searchEvents(q: EventSearchQuery): Promise<{ hits: SearchHit[]; count: number }> {
    const types = q.keys.map((k) => SEARCH_KEYS[k]);
    if (q.words.length === 0 || q.spans.length === 0 || types.length === 0) return { hits: [], count: 0 };
    const params: unknown[] = [
      tsQuery(q.words),
      types,
      q.spans.map((s) => s.roomId),
      q.spans.map((s) => s.lo),
      q.spans.map((s) => s.hi),
    ];
    const where = [
      "e.redacted_by IS NULL",
      TIMELINE,
      "e.type = ANY($2::text[])",
      `EXISTS (SELECT 1 FROM unnest($3::text[], $4::bigint[], $5::bigint[]) r(room_id, lo, hi)
        WHERE r.room_id = e.room_id AND e.stream BETWEEN r.lo AND r.hi)`,
    ];
    if (q.filter) filterConditions(q.filter, where, params);
    // The matches first, then their events by primary key: left to itself the planner may walk the room's events.
    const matches = `WITH s AS MATERIALIZED (
      SELECT stream, vector FROM event_search WHERE vector @@ to_tsquery('simple'::regconfig, $1))`;
    const from = `FROM s JOIN events e ON e.stream = s.stream WHERE ${where.join(" AND ")}`;
    const d = this.#conn();
    const countP = d.row(`${matches} SELECT count(*) AS n ${from}`, params);
    if (q.limit <= 0) return { hits: [], count: Number((await countP).n) };
    const pageParams = [...params];
    let page: string;
    if (q.orderBy === "recent") {
      pageParams.push(q.before ?? Number.MAX_SAFE_INTEGER, q.limit);
      page = `${from} AND e.stream < $${pageParams.length - 1} ORDER BY e.stream DESC LIMIT $${pageParams.length}`;
    } else {
      pageParams.push(q.limit, q.offset ?? 0);
      page = `${from} ORDER BY rank DESC, e.stream DESC LIMIT $${pageParams.length - 1} OFFSET $${pageParams.length}`;
    }
    const [count, rows] = await Promise.all([
      countP,
      d.rows(
        `${matches} SELECT ${EVENT_COLUMNS}, ts_rank(s.vector, to_tsquery('simple'::regconfig, $1)) AS rank ${page}`,
        pageParams,
      ),
    ]);
    return { hits: rows.map((r) => ({ event: eventFromRow(r), rank: Number(r.rank) })), count: Number(count.n) };
  }
}
