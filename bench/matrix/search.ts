/**
 * POST /search over 100,000 messages in one room (every message carries one of 100 tag words, so a tag matches
 * 1,000 of them), ranked, 10 results with count and highlights, on SQLite and on PostgreSQL. The messages are
 * written straight into the store (HTTP sends would take minutes on PostgreSQL), so the index is the one the
 * migration and write path keep. Baseline, same run: the raw full-text query alone in this process (FTS5 MATCH with
 * bm25 on SQLite, the tsvector @@ tsquery with ts_rank on PostgreSQL), top 10 plus the count.
 * Target: p50 <= 20 ms.
 */

import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import pg from "pg";
import { openStore } from "../../src/matrix/store/open.ts";
import type { NewEvent } from "../../src/matrix/store/types.ts";
import { registerUser } from "../../test/e2e/helpers/client.ts";
import { type Backend, ChildHomeserver } from "../../test/e2e/helpers/homeserver.ts";
import { type BenchResult, benchMessage, HttpClient, percentile, round, runIfMain } from "./lib.ts";

const MESSAGES = Number(process.env.BENCH_SEARCH_MESSAGES ?? 100_000);
const TAGS = 100;
const RUNS = Number(process.env.BENCH_RUNS ?? 200);
const C = "/_matrix/client/v3";
const WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"];

/** Two digits each, so no tag is a prefix of another (search words match as prefixes). */
const tagOf = (i: number) => `tag${String(i % TAGS).padStart(2, "0")}`;
const body = (i: number) =>
  `message ${i} about ${WORDS[i % WORDS.length]} and ${WORDS[(i * 7) % WORDS.length]} ${tagOf(i)} in the bench`;

async function fill(hs: ChildHomeserver, roomId: string, sender: string): Promise<void> {
  const store = await openStore(hs.db.database, hs.dataDir);
  try {
    let stream = await store.getMaxStream();
    for (let at = 0; at < MESSAGES; at += 1000) {
      const batch: NewEvent[] = [];
      for (let i = at; i < Math.min(MESSAGES, at + 1000); i++) {
        stream++;
        batch.push(benchMessage(i, stream, roomId, sender, body(i)));
      }
      await store.events.persistEvents(batch);
    }
  } finally {
    await store.close();
  }
}

/** The raw index query: top 10 by rank and the count, for `tag`; returns the ms it took. */
async function rawQuery(
  backend: Backend,
  hs: ChildHomeserver,
): Promise<{ time(tag: string): Promise<number>; close(): Promise<void> }> {
  if (backend === "sqlite") {
    const db = new DatabaseSync(join(hs.dataDir, "homeserver.db"), { readOnly: true });
    const top = db.prepare(
      "SELECT rowid, bm25(event_search) AS r FROM event_search WHERE event_search MATCH ? ORDER BY r LIMIT 10",
    );
    const count = db.prepare("SELECT count(*) AS n FROM event_search WHERE event_search MATCH ?");
    return {
      async time(tag) {
        const t = performance.now();
        top.all(`"${tag}"*`);
        count.get(`"${tag}"*`);
        return performance.now() - t;
      },
      async close() {
        db.close();
      },
    };
  }
  const c = new pg.Client({ connectionString: hs.db.database });
  await c.connect();
  await c.query("SET search_path TO ami_matrix");
  const where = "vector @@ to_tsquery('simple', $1)";
  return {
    async time(tag) {
      const t = performance.now();
      await Promise.all([
        c.query(
          `SELECT stream, ts_rank(vector, to_tsquery('simple', $1)) AS r FROM event_search WHERE ${where}
          ORDER BY r DESC LIMIT 10`,
          [`${tag}:*`],
        ),
        c.query(`SELECT count(*) FROM event_search WHERE ${where}`, [`${tag}:*`]),
      ]);
      return performance.now() - t;
    },
    async close() {
      await c.end();
    },
  };
}

export async function run(backend: Backend = "sqlite"): Promise<BenchResult[]> {
  const hs = await ChildHomeserver.start({ backend });
  try {
    const user = await registerUser(hs.url, "searcher");
    const http = new HttpClient(hs.url);
    const roomId = (await http.json("POST", `${C}/createRoom`, user.accessToken, { preset: "private_chat" })).room_id;
    await hs.stop();
    const t0 = performance.now();
    await fill(hs, roomId, user.userId);
    console.error(`[search] ${backend}: ${MESSAGES} messages stored in ${round((performance.now() - t0) / 1000, 1)} s`);
    await hs.start();
    const raw = await rawQuery(backend, hs);
    const times: number[] = [];
    const rawTimes: number[] = [];
    for (let i = 0; i < RUNS + 10; i++) {
      const tag = tagOf(i * 37);
      const t = performance.now();
      const r = await http.call("POST", `${C}/search`, user.accessToken, {
        search_categories: { room_events: { search_term: tag, order_by: "rank" } },
      });
      const dt = performance.now() - t;
      if (r.status !== 200) throw new Error(`/search -> ${r.status} ${r.text.slice(0, 300)}`);
      const re = JSON.parse(r.text).search_categories.room_events;
      if (re.count !== MESSAGES / TAGS || re.results.length !== 10)
        throw new Error(`/search ${tag}: ${re.count} found`);
      const rt = await raw.time(tag);
      if (i >= 10) {
        times.push(dt);
        rawTimes.push(rt);
      }
    }
    await raw.close();
    http.close();
    const baseline = `raw ${backend === "sqlite" ? "FTS5 MATCH + bm25" : "tsvector @@ + ts_rank"} top 10 + count: p50 ${round(percentile(rawTimes, 50))} ms, p99 ${round(percentile(rawTimes, 99))} ms`;
    const p50 = round(percentile(times, 50));
    const what = `/search rank, ${MESSAGES} messages, ${MESSAGES / TAGS} matches (${backend === "sqlite" ? "SQLite" : "PostgreSQL"})`;
    return [
      { bench: what, metric: "p50", value: p50, unit: "ms", baseline, target: "<= 20 ms", met: p50 <= 20 },
      { bench: what, metric: "p99", value: round(percentile(times, 99)), unit: "ms", baseline, target: "", met: null },
    ];
  } finally {
    await hs.dispose();
  }
}

runIfMain(import.meta, async () => [...(await run("sqlite")), ...(await run("postgres"))]);
