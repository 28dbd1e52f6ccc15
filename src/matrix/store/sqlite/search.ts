/**
 * The SearchStore on SQLite: FTS5 (the event_search table, kept by triggers on events: schema.ts) ranked by bm25;
 * the user directory is shared SQL (sql/search.ts).
 */
import { EVENT_COLUMNS, eventFromRow } from "../rows.ts";
import { TIMELINE } from "../sql/events.ts";
import { SqlUserDirectory } from "../sql/search.ts";
import { type EventSearchQuery, SEARCH_KEYS, type SearchHit, type SearchStore } from "../types.ts";
import type { SqliteDb } from "./db.ts";
import { SqliteSql } from "./db.ts";
import { filterConditions } from "./events.ts";

/** Up to this many spans are written into the statement; more travel as one JSON parameter. */
const INLINE_SPANS = 64;

/** Each word a quoted FTS5 prefix query, all required (the words hold only letters and digits). */
export const ftsQuery = (words: string[]): string => words.map((w) => `"${w}"*`).join(" ");

export class SqliteSearchStore extends SqlUserDirectory implements SearchStore {
  readonly #conn: () => SqliteDb;
  constructor(conn: () => SqliteDb) {
    super(new SqliteSql(conn), "json_extract(j.pdu, '$.content.join_rule')");
    this.#conn = conn;
  }

  async searchEvents(q: EventSearchQuery): Promise<{ hits: SearchHit[]; count: number }> {
    const types = q.keys.map((k) => SEARCH_KEYS[k]);
    if (q.words.length === 0 || q.spans.length === 0 || types.length === 0) return { hits: [], count: 0 };
    const where = ["event_search MATCH ?", "e.redacted_by IS NULL", "e.type IN (SELECT value FROM json_each(?))"];
    const params: (string | number)[] = [ftsQuery(q.words), JSON.stringify(types)];
    if (q.spans.length <= INLINE_SPANS) {
      // Inline: per matching row a few comparisons, where json_each would open a cursor (10x the raw query).
      where.push(`(${q.spans.map(() => "(e.room_id = ? AND e.stream BETWEEN ? AND ?)").join(" OR ")})`);
      for (const sp of q.spans) params.push(sp.roomId, sp.lo, sp.hi);
    } else {
      where.push(`EXISTS (SELECT 1 FROM json_each(?) r WHERE json_extract(r.value, '$[0]') = e.room_id
        AND e.stream BETWEEN json_extract(r.value, '$[1]') AND json_extract(r.value, '$[2]'))`);
      params.push(JSON.stringify(q.spans.map((sp) => [sp.roomId, sp.lo, sp.hi])));
    }
    where.push(TIMELINE);
    const strs: string[] = [];
    if (q.filter) filterConditions(q.filter, where, strs);
    params.push(...strs);
    // CROSS JOIN keeps the full-text match the outer loop: led by events' room index, SQLite would run MATCH per row.
    const from = `FROM event_search CROSS JOIN events e ON e.stream = event_search.rowid WHERE ${where.join(" AND ")}`;
    const d = this.#conn();
    const count = Number((d.q(`SELECT count(*) AS n ${from}`).get(...params) as { n: number }).n);
    if (q.limit <= 0) return { hits: [], count };
    let page: string;
    const pageParams = [...params];
    if (q.orderBy === "recent") {
      page = `${from} AND e.stream < ? ORDER BY e.stream DESC LIMIT ?`;
      pageParams.push(q.before ?? Number.MAX_SAFE_INTEGER, q.limit);
    } else {
      page = `${from} ORDER BY score DESC, e.stream DESC LIMIT ? OFFSET ?`;
      pageParams.push(q.limit, q.offset ?? 0);
    }
    const rows = d.q(`SELECT ${EVENT_COLUMNS}, -bm25(event_search) AS score ${page}`).all(...pageParams) as any[];
    return { hits: rows.map((r) => ({ event: eventFromRow(r), rank: Number(r.score) })), count };
  }
}
