/**
 * PgSequencer on a real PostgreSQL: positions are consecutive per turn, turns of two sequencers (two processes)
 * commit in position order, a sequencer whose session dies mid-turn frees the lock (a gap), and the head poll
 * catches up past a turn that committed but never ended.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import pg from "pg";
import { createLogger } from "../../core/logger.ts";
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

before(() => admin(`CREATE DATABASE ${dbName}`));
after(() => admin(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`));

test("positions: consecutive per turn, past what is stored; two sequencers' turns commit in position order", async () => {
  const a = new PgSequencer(url, log);
  const b = new PgSequencer(url, log);
  try {
    await a.init(100);
    await b.init(50);
    assert.equal(await a.head(), 100);
    const first = await a.run(3, async (p) => p);
    assert.equal(first, 101);
    assert.equal(await b.head(), 103);
    // Each "commit" records its positions when it finishes; turns overlap in time but not in the lock.
    const committed: number[] = [];
    const turn = (s: PgSequencer, n: number) =>
      s.run(n, async (p) => {
        await new Promise((r) => setTimeout(r, Math.random() * 5));
        for (let i = 0; i < n; i++) committed.push(p + i);
      });
    await Promise.all(Array.from({ length: 20 }, (_, i) => turn(i % 2 ? a : b, 1 + (i % 3))));
    assert.deepEqual(
      committed,
      [...committed].sort((x, y) => x - y),
      "commit order is position order",
    );
    assert.equal(committed.length, new Set(committed).size);
  } finally {
    await a.close();
    await b.close();
  }
});

test("a session dying mid-turn frees the lock; the head poll moves past a turn that committed but never ended", async () => {
  const a = new PgSequencer(url, log);
  await a.init(0);
  // A "worker" that takes the lock and a position, then dies (its connection closes) without ending its turn.
  const dead = new pg.Client({ connectionString: ADMIN_URL.replace(/\/[^/]*$/, `/${dbName}`) });
  await dead.connect();
  await dead.query("SELECT pg_advisory_lock(6385001, 1)");
  const held = Number((await dead.query("SELECT nextval('ami_stream_seq') AS p")).rows[0].p);
  const before = await a.head();
  assert.ok(before < held, "the head does not pass a turn in progress");
  await dead.end();
  const next = await a.run(1, async (p) => p);
  assert.ok(next > held, "the next turn runs, past the dead one's position");
  // A turn whose commit happened but whose end was lost: the sequence moved, the head did not.
  const raw = new pg.Client({ connectionString: ADMIN_URL.replace(/\/[^/]*$/, `/${dbName}`) });
  await raw.connect();
  const orphan = Number((await raw.query("SELECT nextval('ami_stream_seq') AS p")).rows[0].p);
  await raw.end();
  assert.equal(await a.head(), orphan);
  await a.close();
});

test("room lock keys are stable 32-bit integers", () => {
  assert.equal(roomKey("!a:localhost"), roomKey("!a:localhost"));
  assert.notEqual(roomKey("!a:localhost"), roomKey("!b:localhost"));
  assert.ok(Number.isInteger(roomKey("!x:y")) && Math.abs(roomKey("!x:y")) < 2 ** 31);
});
