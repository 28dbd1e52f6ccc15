/**
 * The cluster's forwarding hop alone (cluster/routing.ts): CPU per forwarded send, forwarder and owner together in
 * this one process, with 50 sends in flight through one RoomRouter to another whose handler answers at once — the
 * hop's own cost, without the homeserver's work around it, and far less sensitive to the machine's load than
 * events/s. `BENCH_BASE_ROUTING=<path of another routing.ts>` (e.g. the HTTP version of an older checkout) measures
 * that one too, interleaved, as the same-run baseline. Needs PostgreSQL (the writers' registry).
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { createLogger } from "../../src/core/logger.ts";
import type { SendEventInput } from "../../src/matrix/hs.ts";
import { DEFAULT_SCHEMA } from "../../src/matrix/store/postgres/db.ts";
import { PG_ADMIN_URL, pgAdmin } from "../../test/e2e/helpers/homeserver.ts";
import { type BenchResult, round, runIfMain, untargetedRows } from "./lib.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const IN_FLIGHT = 50;

interface RouterLike {
  start(): Promise<void>;
  serve(h: (input: SendEventInput) => Promise<{ eventId: string; stream: number }>): void;
  forward(owner: { slot: number; url: string; secret: string }, input: SendEventInput): Promise<unknown>;
  close(): Promise<void>;
}
type RouterClass = new (db: string, slot: () => number, log: ReturnType<typeof createLogger>) => RouterLike;

/** CPU µs per forwarded send through `Router` (owner at slot 0, forwarder at slot 1). */
async function measure(Router: RouterClass, db: string): Promise<number> {
  const log = createLogger({ level: "error" });
  const owner = new Router(db, () => 0, log);
  const fwd = new Router(db, () => 1, log);
  let n = 0;
  owner.serve(async () => ({ eventId: `$e${n}`, stream: ++n }));
  await owner.start();
  await fwd.start();
  const c = new pg.Client({ connectionString: db });
  await c.connect();
  const row = (await c.query(`SELECT url, secret FROM ${DEFAULT_SCHEMA}.ami_stream_writers WHERE slot = 0`)).rows[0];
  await c.end();
  const to = { slot: 0, url: String(row.url), secret: String(row.secret) };
  const input = {
    roomId: "!room:localhost",
    sender: "@so_sender1:localhost",
    type: "m.room.message",
    content: {
      msgtype: "m.text",
      body: "scale-out message 1 from sender 1: the quick brown fox jumps over the lazy dog",
    },
    txn: { deviceId: "DEVICEID", scope: "device", txnId: "s1-1" },
  } as unknown as SendEventInput;
  try {
    let stop = false;
    let counted = 0;
    let counting = false;
    const lanes = Array.from({ length: IN_FLIGHT }, async () => {
      while (!stop) {
        if ((await fwd.forward(to, input)) === null) throw new Error("forward failed");
        if (counting) counted++;
      }
    });
    await new Promise((r) => setTimeout(r, 1000)); // warm-up (JIT)
    counting = true;
    const cpu0 = process.cpuUsage();
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    const cpu = process.cpuUsage(cpu0);
    const sent = counted;
    stop = true;
    await Promise.all(lanes);
    return (cpu.user + cpu.system) / sent;
  } finally {
    await fwd.close();
    await owner.close();
  }
}

export async function run(): Promise<BenchResult[]> {
  const name = `ami_fwd_${randomBytes(5).toString("hex")}`;
  await pgAdmin(`CREATE DATABASE ${name}`);
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${name}`;
  const db = u.toString();
  try {
    const c = new pg.Client({ connectionString: db });
    await c.connect();
    // The one table the routers use (src/matrix/store/postgres/schema.ts).
    await c.query(`CREATE SCHEMA ${DEFAULT_SCHEMA}; SET search_path = ${DEFAULT_SCHEMA}`);
    await c.query(
      "CREATE TABLE ami_stream_writers (slot INTEGER PRIMARY KEY, url TEXT NOT NULL, secret TEXT NOT NULL)",
    );
    await c.end();
    const ours = (await import("../../src/matrix/cluster/routing.ts")).RoomRouter as unknown as RouterClass;
    const basePath = process.env.BENCH_BASE_ROUTING;
    const base = basePath ? ((await import(basePath)).RoomRouter as RouterClass) : null;
    const row = untargetedRows("cluster-forward");
    const rows: BenchResult[] = [];
    for (let r = 1; r <= ROUNDS; r++) {
      const b = base ? await measure(base, db) : null;
      const o = await measure(ours, db);
      rows.push(
        row(
          `round ${r}: CPU per forwarded send (forwarder + owner), ${IN_FLIGHT} in flight`,
          round(o, 1),
          "µs",
          b === null ? "" : `${basePath}: ${round(b, 1)} µs (${round(o / b, 2)}x)`,
        ),
      );
    }
    return rows;
  } finally {
    await pgAdmin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  }
}

await runIfMain(import.meta, run);
