/**
 * PgSequencer on a real PostgreSQL: two writers (two processes) take distinct positions and commit concurrently;
 * the persisted position never passes a position still in flight at another writer (with or without its bus
 * message), also for a turn taken inside its write's transaction (until that commits or rolls back), a writer killed
 * mid-turn holds nobody back once its session is gone, and the blocking poll reaches
 * the sequence when every turn has ended.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import pg from "pg";
import { createLogger } from "../../core/logger.ts";
import { MIGRATIONS } from "../store/postgres/schema.ts";
import type { TxTurn } from "../stream.ts";
import { PgSequencer, roomKey } from "./positions.ts";

const ADMIN_URL = process.env.AMI_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const dbName = `ami_test_${randomBytes(6).toString("hex")}`;
const url = (() => {
  const u = new URL(ADMIN_URL);
  u.pathname = `/${dbName}`;
  u.searchParams.set("schema", "public");
  return u.toString();
})();
const log = createLogger({ level: "error" });

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: ADMIN_URL });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

before(async () => {
  await admin(`CREATE DATABASE ${dbName}`);
  // The coordination objects come from the store's migration that creates them (later ones are appended after it);
  // the store is not opened here.
  const c = new pg.Client({ connectionString: ADMIN_URL.replace(/\/[^/]*$/, `/${dbName}`) });
  await c.connect();
  const coordination = MIGRATIONS.find((m) => m.includes("CREATE TABLE ami_stream_writers"));
  assert.ok(coordination, "the migration creating ami_stream_writers");
  await c.query(coordination);
  await c.end();
});
after(() => admin(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`));

const until = async (what: string, ok: () => boolean | Promise<boolean>) => {
  const end = Date.now() + 5000;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

test("two writers: distinct positions past what is stored; persisted never passes a turn in flight", async () => {
  const a = new PgSequencer(url, log);
  const b = new PgSequencer(url, log);
  const seenA: number[] = [];
  const seenB: number[] = [];
  a.onPersisted = (p) => seenA.push(p);
  b.onPersisted = (p) => seenB.push(p);
  // The bus: each writer's turn reaches the other.
  a.onTurn = (slot, safe) => b.heard(slot, safe);
  b.onTurn = (slot, safe) => a.heard(slot, safe);
  try {
    await a.init(100);
    await b.init(50);
    assert.notEqual(a.slot, b.slot);
    assert.equal(await a.head(), 100);
    assert.deepEqual(await a.run(3, async (ps) => ps), [101, 102, 103]);
    // a's turn stays open at its position while b commits two later ones: b's persisted stays below a's position
    // (a is busy, and a never published anything past 103), however often b probes.
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    let aPos = 0;
    const aTurn = a.run(1, async ([p]) => {
      aPos = p;
      await held;
      return p;
    });
    await until("a's turn took its position", () => aPos > 0);
    await b.run(1, async ([p]) => p);
    const bLast = await b.run(1, async ([p]) => p);
    assert.ok(bLast > aPos);
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(Math.max(0, ...seenB) < aPos, `b's persisted ${Math.max(...seenB)} passed a's open turn at ${aPos}`);
    release();
    assert.equal(await aTurn, aPos);
    // a's turn message (sent once its busy lock is released): b's probe finds a idle, reaches its own last position.
    await until("b reaches its own last position", () => Math.max(...seenB) >= bLast);
    // Many concurrent turns on both: every position taken once, persisted only moves up.
    const taken: number[] = [];
    await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        (i % 2 ? a : b).run(1 + (i % 3), async (ps) => {
          await new Promise((r) => setTimeout(r, Math.random() * 5));
          taken.push(...ps);
        }),
      ),
    );
    assert.equal(taken.length, new Set(taken).size);
    const top = Math.max(...taken);
    assert.equal(await a.head(), top, "the blocking poll reaches the sequence once every turn ended");
    for (const seen of [seenA, seenB])
      assert.deepEqual(
        seen,
        [...seen].sort((x, y) => x - y),
        "persisted only moves up",
      );
  } finally {
    await a.close();
    await b.close();
  }
});

test("a writer killed mid-turn holds nobody back once its session is gone", async () => {
  const a = new PgSequencer(url, log);
  await a.init(0);
  try {
    const before = await a.head();
    // A "worker" with a slot that takes its busy lock and a position, then dies without ending its turn.
    const dead = new pg.Client({ connectionString: ADMIN_URL.replace(/\/[^/]*$/, `/${dbName}`) });
    await dead.connect();
    const slot = 63;
    await dead.query(`SELECT pg_advisory_lock(${0x616d69 + 2}, ${slot}), pg_advisory_lock(${0x616d69 + 3}, ${slot})`);
    await dead.query(`INSERT INTO ami_stream_writers VALUES (${slot}, '', '')`);
    const held = Number((await dead.query("SELECT nextval('ami_stream_seq') AS p")).rows[0].p);
    assert.ok(held > before);
    const mine = await a.run(1, async ([p]) => p);
    assert.ok(mine > held);
    let seen = 0;
    a.onPersisted = (p) => {
      seen = p;
    };
    a.refresh();
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(seen < held, `persisted ${seen} passed the busy writer's ${held}`);
    await dead.end();
    a.refresh();
    await until("persisted passes the dead writer's gap", () => seen >= mine);
  } finally {
    await a.close();
  }
});

const BUSY = 0x616d69 + 3;

/** A room-event write as the store runs it (postgres/events.ts persistInTurn), held open until `hold` resolves. */
async function txWrite(c: pg.Client, turn: TxTurn, hold: Promise<void>, fail = false): Promise<number[]> {
  try {
    const opened = (await c.query(`BEGIN; ${turn.open}`)) as unknown as pg.QueryResult[];
    const ps = turn.opened(opened[opened.length - 1].rows);
    await hold;
    if (fail) throw new Error("the write failed");
    turn.closing();
    const closed = (await c.query(`${turn.close}; COMMIT`)) as unknown as pg.QueryResult[];
    turn.committed(closed.slice(0, -1));
    return ps;
  } catch (e) {
    await c.query("ROLLBACK");
    throw e;
  }
}

test("a turn inside the write's transaction: persisted never passes it until it commits or rolls back", async () => {
  const a = new PgSequencer(url, log);
  const b = new PgSequencer(url, log);
  const seenB: number[] = [];
  b.onPersisted = (p) => seenB.push(p);
  a.onTurn = (slot, safe) => b.heard(slot, safe);
  b.onTurn = (slot, safe) => a.heard(slot, safe);
  const ca = new pg.Client({ connectionString: ADMIN_URL.replace(/\/[^/]*$/, `/${dbName}`) });
  const cb = new pg.Client({ connectionString: ADMIN_URL.replace(/\/[^/]*$/, `/${dbName}`) });
  await ca.connect();
  await cb.connect();
  try {
    await a.init(0);
    await b.init(0);
    for (const fail of [false, true]) {
      let release!: () => void;
      const held = new Promise<void>((r) => {
        release = r;
      });
      const aTurn = a.runInTx(2, (turn) => txWrite(ca, turn, held, fail));
      // a's busy lock is held by its open transaction from before its positions were taken.
      await until("a's turn took its positions", async () => {
        const r = await cb.query(`SELECT pg_try_advisory_lock_shared(${BUSY}, $1) AS free`, [a.slot]);
        if (r.rows[0].free) await cb.query(`SELECT pg_advisory_unlock_shared(${BUSY}, $1)`, [a.slot]);
        return !r.rows[0].free;
      });
      const bLast = await b.runInTx(1, (turn) => txWrite(cb, turn, Promise.resolve()));
      await new Promise((r) => setTimeout(r, 100));
      const top = Math.max(0, ...seenB);
      assert.ok(top < bLast[0] - 2, `b's persisted ${top} passed a's open turn below ${bLast[0]}`);
      release();
      if (fail) await assert.rejects(aTurn, /the write failed/);
      else assert.equal((await aTurn).length, 2);
      // Committed or rolled back (its positions a gap), a's turn holds nobody back any more.
      await until("b passes a's turn once it ended", () => Math.max(...seenB) >= bLast[0]);
    }
  } finally {
    await ca.end();
    await cb.end();
    await a.close();
    await b.close();
  }
});

test("room lock keys are stable 32-bit integers", () => {
  assert.equal(roomKey("!a:localhost"), roomKey("!a:localhost"));
  assert.notEqual(roomKey("!a:localhost"), roomKey("!b:localhost"));
  assert.ok(Number.isInteger(roomKey("!x:y")) && Math.abs(roomKey("!x:y")) < 2 ** 31);
});
