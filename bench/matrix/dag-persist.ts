/**
 * The room DAG's cost on the persist path: process CPU per persisted event (one event per commit, as the stream
 * writer commits under light load) for a linear room of 90% messages and 10% member events, each event carrying
 * its prev_events, three auth_events and its state group (NewEvent.state) as the room service sends them.
 * Baseline, same run, same store, alternated: the same events with no DAG part (no prev/auth events, no state),
 * which skips the edges and state groups (the outlier delete and extremity insert still run). SQLite and
 * PostgreSQL (PostgreSQL's own CPU is not counted: one statement either way, the round trip dominates).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { planEventState } from "../../src/matrix/store/dag.ts";
import { openStore } from "../../src/matrix/store/open.ts";
import type { NewEvent } from "../../src/matrix/store/types.ts";
import { type BenchResult, round, runIfMain } from "./lib.ts";

const N = Number(process.env.BENCH_EVENTS ?? 2000);
const ROUNDS = 3;
const PG = process.env.AMI_BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** CPU microseconds per persisted event, `dag` with or without the DAG part. */
async function cpuPerEvent(database: (tag: string) => string, dataDir: string, dag: boolean): Promise<number> {
  const s = await openStore(database(dag ? "dag" : "flat"), dataDir);
  const R = "!bench:hs";
  await s.rooms.createRoom({ roomId: R, version: "11", creator: "@a:hs", createdTs: 1, isPublic: false });
  let prev: string | null = null;
  let state: NewEvent["state"] = { before: null, beforeChain: 0 };
  let cpu = 0;
  try {
    for (let i = 1; i <= N; i++) {
      const isState = i === 1 || i % 10 === 0;
      const e: NewEvent = {
        stream: i,
        eventId: `$bench${i}`,
        roomId: R,
        type: i === 1 ? "m.room.create" : isState ? "m.room.member" : "m.room.message",
        stateKey: i === 1 ? "" : isState ? `@u${i}:hs` : null,
        sender: "@a:hs",
        originServerTs: i,
        depth: i,
        pdu: {
          room_id: R,
          sender: "@a:hs",
          content: { msgtype: "m.text", body: "x".repeat(200) },
          depth: i,
          prev_events: dag && prev ? [prev] : [],
          auth_events: dag ? ["$bench1", "$m", "$p"] : [],
          hashes: { sha256: "y".repeat(43) },
          signatures: { hs: { "ed25519:a": "z".repeat(86) } },
        },
      };
      if (dag) e.state = state;
      const c0 = process.cpuUsage();
      await s.events.persistEvents([e]);
      const c = process.cpuUsage(c0);
      cpu += c.user + c.system;
      const plan = planEventState(e);
      if (plan) state = { before: plan.after, beforeChain: plan.afterChain };
      prev = e.eventId;
    }
  } finally {
    await s.close();
  }
  return cpu / N;
}

async function measure(backend: "sqlite" | "postgres"): Promise<BenchResult> {
  const dir = mkdtempSync(join(tmpdir(), "ami-dag-bench-"));
  const stamp = Date.now().toString(36);
  let n = 0;
  const database = (tag: string) =>
    backend === "sqlite" ? `sqlite:${join(dir, `${tag}${++n}.db`)}` : `${PG}?schema=bench_dag_${stamp}_${tag}${++n}`;
  const dag: number[] = [];
  const flat: number[] = [];
  try {
    for (let r = 0; r < ROUNDS; r++) {
      flat.push(await cpuPerEvent(database, dir, false));
      dag.push(await cpuPerEvent(database, dir, true));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    if (backend === "postgres") {
      const c = new pg.Client({ connectionString: PG });
      await c.connect();
      for (let i = 1; i <= n; i++)
        for (const tag of ["dag", "flat"]) await c.query(`DROP SCHEMA IF EXISTS bench_dag_${stamp}_${tag}${i} CASCADE`);
      await c.end();
    }
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  return {
    bench: `persist with the room DAG (${backend})`,
    metric: "CPU per event",
    value: round(med(dag), 1),
    unit: "us",
    baseline: `same events without DAG part ${round(med(flat), 1)} us (x${round(med(dag) / med(flat))}); runs ${dag.map((x) => round(x, 0)).join("/")} vs ${flat.map((x) => round(x, 0)).join("/")}`,
    target: "",
    met: null,
  };
}

export async function run(): Promise<BenchResult[]> {
  return [await measure("sqlite"), await measure("postgres")];
}

await runIfMain(import.meta, run);
