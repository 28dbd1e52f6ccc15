/**
 * Persisted events/s: 50 concurrent senders (10 rooms, 5 senders each) PUT m.room.message as fast as the server
 * acknowledges them; a send is counted when answered 200 (the event is committed by then). SQLite and PostgreSQL.
 * Baseline, same run: raw single-row autocommit inserts of rows of the same shape and size (node:sqlite in WAL
 * with synchronous=NORMAL like the store; `pg` on the same server), one at a time as the server's stream writer
 * commits them. Target: >= 2,000 events/s on SQLite.
 */

import { rmSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import pg from "pg";
import { enc, registerUser, type Session } from "../../test/e2e/helpers/client.ts";
import { type Backend, ChildHomeserver, createTestDatabase, tempDir } from "../../test/e2e/helpers/homeserver.ts";
import { type BenchResult, cpuShare, cpuTicks, HttpClient, mb, pool, round, runIfMain } from "./lib.ts";

const SENDERS = 50;
const ROOMS = 10;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const C = "/_matrix/client/v3";

const EVENTS_DDL = `CREATE TABLE events (
  stream BIGINT PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, room_id TEXT NOT NULL, type TEXT NOT NULL, state_key TEXT,
  sender TEXT NOT NULL, origin_server_ts BIGINT NOT NULL, depth BIGINT NOT NULL, contains_url INTEGER NOT NULL DEFAULT 0,
  pdu TEXT NOT NULL, redacted_by TEXT, txn_device_id TEXT, txn_id TEXT)`;
const EVENTS_INDEX = "CREATE INDEX events_room_stream ON events(room_id, stream)";

export interface LoadOutcome {
  eventsPerSec: number;
  sent: number;
  rssAfterBytes: number;
  samplePdu: string;
  /** Server process CPU during the timed window, in cores (1.0 = one core busy). */
  cpu: number;
}

/** Set up 50 senders in 10 rooms on `hs`, then send for SECONDS and count acknowledged events. */
export async function sendLoad(hs: ChildHomeserver, seconds = SECONDS): Promise<LoadOutcome> {
  const http = new HttpClient(hs.url, SENDERS + 10);
  const owner = await registerUser(hs.url, "loadowner");
  const rooms: string[] = [];
  for (let r = 0; r < ROOMS; r++)
    rooms.push((await http.json("POST", `${C}/createRoom`, owner.accessToken, { preset: "public_chat" })).room_id);
  const senders: { s: Session; roomId: string }[] = [];
  await pool(
    Array.from({ length: SENDERS }, (_, i) => i),
    10,
    async (i) => {
      const s = await registerUser(hs.url, `loader${i}`);
      const roomId = rooms[i % ROOMS];
      await http.json("POST", `${C}/join/${enc(roomId)}`, s.accessToken, {});
      senders.push({ s, roomId });
    },
  );
  let counting = false;
  let stop = false;
  let sent = 0;
  let lastEvent = "";
  let lastRoom = "";
  const lanes = senders.map(async ({ s, roomId }, n) => {
    for (let i = 0; !stop; i++) {
      const r = await http.json("PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/l${n}-${i}`, s.accessToken, {
        msgtype: "m.text",
        body: `load message ${i} from sender ${n}: the quick brown fox jumps over the lazy dog`,
      });
      if (counting && !stop) sent++;
      lastEvent = r.event_id;
      lastRoom = roomId;
    }
  });
  await new Promise((r) => setTimeout(r, 1000)); // warm-up
  counting = true;
  const cpu0 = cpuTicks(hs.pid);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const elapsed = (performance.now() - t0) / 1000;
  stop = true;
  await Promise.all(lanes);
  const rssAfterBytes = hs.rssBytes();
  const ev = await http.json("GET", `${C}/rooms/${enc(lastRoom)}/event/${enc(lastEvent)}`, owner.accessToken);
  http.close();
  // The store keeps the full signed PDU: add what the client format leaves out, at their real sizes.
  const { unsigned: _u, event_id: _e, ...pdu } = ev;
  const id = () => `$${"x".repeat(43)}`;
  Object.assign(pdu, {
    auth_events: [id(), id(), id()],
    prev_events: [id()],
    depth: 12345,
    hashes: { sha256: "h".repeat(43) },
    signatures: { localhost: { "ed25519:a_abcd": "s".repeat(86) } },
  });
  return {
    eventsPerSec: sent / elapsed,
    sent,
    rssAfterBytes,
    samplePdu: JSON.stringify(pdu),
    cpu: cpuShare(hs.pid, cpu0, elapsed),
  };
}

function row(i: number, pdu: string): unknown[] {
  return [
    i,
    `$bench${i}`,
    `!room${i % ROOMS}:localhost`,
    "m.room.message",
    null,
    `@loader${i % SENDERS}:localhost`,
    Date.now(),
    i,
    pdu,
    `DEV${i % SENDERS}`,
    `l${i}`,
  ];
}
const INSERT_COLS =
  "stream, event_id, room_id, type, state_key, sender, origin_server_ts, depth, pdu, txn_device_id, txn_id";

/** Raw node:sqlite autocommit inserts per second, same pragmas as the store. */
export function sqliteBaseline(pdu: string, seconds = 3): number {
  const dir = tempDir("ami-bench-");
  const db = new DatabaseSync(join(dir, "raw.db"));
  db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
  db.exec(EVENTS_DDL);
  db.exec(EVENTS_INDEX);
  const ins = db.prepare(`INSERT INTO events (${INSERT_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)`);
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    ins.run(...(row(n, pdu) as any[]));
    n++;
  }
  const rate = n / ((performance.now() - t0) / 1000);
  db.close();
  rmSync(dir, { recursive: true, force: true });
  return rate;
}

/** Raw `pg` autocommit inserts per second, one at a time, into a throwaway database. */
export async function pgBaseline(pdu: string, seconds = 3): Promise<number> {
  const db = await createTestDatabase("postgres", "");
  const c = new pg.Client({ connectionString: db.database });
  await c.connect();
  try {
    await c.query(EVENTS_DDL);
    await c.query(EVENTS_INDEX);
    const sql = `INSERT INTO events (${INSERT_COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)`;
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < seconds * 1000) {
      await c.query({ name: "ins", text: sql, values: row(n, pdu) });
      n++;
    }
    return n / ((performance.now() - t0) / 1000);
  } finally {
    await c.end();
    await db.drop();
  }
}

export async function runBackend(
  backend: Backend,
): Promise<{ rows: BenchResult[]; idleRss: number; loadedRss: number }> {
  const hs = await ChildHomeserver.start({ backend });
  try {
    await new Promise((r) => setTimeout(r, 1000));
    const idleRss = hs.rssBytes();
    const out = await sendLoad(hs);
    const base = backend === "sqlite" ? sqliteBaseline(out.samplePdu) : await pgBaseline(out.samplePdu);
    const value = Math.round(out.eventsPerSec);
    const baseline = `raw ${backend === "sqlite" ? "node:sqlite" : "pg"} single-row inserts ${Math.round(base)}/s (${out.samplePdu.length}-byte rows); server CPU ${round(out.cpu, 2)} cores`;
    const row: BenchResult = {
      bench: `events persisted, 50 senders (${backend})`,
      metric: "throughput",
      value,
      unit: "events/s",
      baseline,
      target: backend === "sqlite" ? ">= 2000/s" : "",
      met: backend === "sqlite" ? value >= 2000 : null,
    };
    return { rows: [row], idleRss, loadedRss: out.rssAfterBytes };
  } finally {
    await hs.dispose();
  }
}

export async function run(): Promise<BenchResult[]> {
  const rows: BenchResult[] = [];
  for (const b of ["sqlite", "postgres"] as const) {
    const r = await runBackend(b);
    rows.push(...r.rows);
    console.error(`[throughput ${b}] RSS idle ${mb(r.idleRss)} MB, after load ${mb(r.loadedRss)} MB`);
  }
  return rows.map((r) => ({ ...r, value: round(r.value, 0) }));
}

await runIfMain(import.meta, run);
