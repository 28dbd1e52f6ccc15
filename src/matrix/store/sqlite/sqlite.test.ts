import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { AmiError } from "../../../core/errors.ts";
import { checkDagBackfill, LINEAR_ROOMS } from "../conformance/dag-migration.ts";
import { runStoreConformance } from "../conformance.ts";
import { openStore } from "../open.ts";
import type { Store } from "../types.ts";
import { SqliteDb } from "./db.ts";
import { MIGRATIONS } from "./schema.ts";

// A file (not :memory:) so reopen() reads the same data back and two connections can race.
runStoreConformance("sqlite", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ami-sqlite-"));
  const database = `sqlite:${join(dir, "test.db")}`;
  const open: Store[] = [];
  const openOne = async () => {
    const s = await openStore(database, dir);
    open.push(s);
    return s;
  };
  return {
    store: await openOne(),
    reopen: openOne,
    database,
    cleanup: async () => {
      for (const s of open) await s.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

test("sqlite: WAL, synchronous=NORMAL, foreign keys, busy timeout", () => {
  const dir = mkdtempSync(join(tmpdir(), "ami-sqlite-"));
  try {
    const d = new SqliteDb(join(dir, "p.db"));
    const pragma = (p: string) => Object.values(d.db.prepare(`PRAGMA ${p}`).get() as object)[0];
    assert.equal(pragma("journal_mode"), "wal");
    assert.equal(pragma("synchronous"), 1);
    assert.equal(pragma("foreign_keys"), 1);
    assert.ok(Number(pragma("busy_timeout")) > 0);
    d.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("sqlite: a failing transaction rolls back completely", () => {
  const d = new SqliteDb(":memory:");
  d.migrate(MIGRATIONS);
  assert.throws(() =>
    d.tx(() => {
      d.run("INSERT INTO rooms (room_id, version, creator, created_ts) VALUES ('!a:hs', '11', '@a:hs', 1)");
      throw new Error("boom");
    }),
  );
  assert.equal(d.db.isTransaction, false);
  assert.equal((d.db.prepare("SELECT count(*) AS n FROM rooms").get() as any).n, 0);
  d.close();
});

test("sqlite: a database with a newer schema is refused, and migrations are recorded", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ami-sqlite-"));
  try {
    const path = join(dir, "v.db");
    const s = await openStore(`sqlite:${path}`, dir);
    await s.close();
    const d = new SqliteDb(path);
    assert.equal((d.db.prepare("SELECT max(version) AS v FROM schema_version").get() as any).v, MIGRATIONS.length);
    d.run("INSERT INTO schema_version (version, applied_ts) VALUES (?, ?)", MIGRATIONS.length + 1, 0);
    d.close();
    await assert.rejects(
      openStore(`sqlite:${path}`, dir),
      (e: unknown) => e instanceof AmiError && /newer/.test(e.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("sqlite: migration 2 keeps recorded transaction IDs, scoped to the /send path of their event", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ami-sqlite-"));
  try {
    const path = join(dir, "m.db");
    const d = new SqliteDb(path);
    d.migrate(MIGRATIONS.slice(0, 1));
    d.run("INSERT INTO rooms (room_id, version, creator, created_ts) VALUES ('!r:hs', '11', '@a:hs', 1)");
    d.run(
      `INSERT INTO events (stream, event_id, room_id, type, sender, origin_server_ts, depth, pdu)
       VALUES (1, '$e', '!r:hs', 'm.room.message', '@a:hs', 1, 1, '{}')`,
    );
    d.run("INSERT INTO event_txns (user_id, device_id, txn_id, event_id) VALUES ('@a:hs', 'D', 't', '$e')");
    d.close();
    const s = await openStore(`sqlite:${path}`, dir);
    try {
      assert.equal(await s.events.getTxnEvent("@a:hs", "D", "send/!r:hs/m.room.message", "t"), "$e");
      assert.equal(await s.events.getTxnEvent("@a:hs", "D", "send/!other:hs/m.room.message", "t"), null);
    } finally {
      await s.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("sqlite: the relations migration backfills the relations of stored events", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ami-sqlite-"));
  try {
    const path = join(dir, "r.db");
    const d = new SqliteDb(path);
    d.migrate(
      MIGRATIONS.slice(
        0,
        MIGRATIONS.findIndex((m) => m.includes("CREATE TABLE event_relations")),
      ),
    );
    d.run("INSERT INTO rooms (room_id, version, creator, created_ts) VALUES ('!r:hs', '11', '@a:hs', 1)");
    const rel = (r: object) => JSON.stringify({ content: { "m.relates_to": r } });
    const rows: [number, string, string, string | null][] = [
      [1, "m.room.message", "{}", null],
      [2, "m.room.message", rel({ rel_type: "m.thread", event_id: "$e1" }), null],
      [3, "m.reaction", rel({ rel_type: "m.annotation", event_id: "$e1", key: "👍" }), null],
      [4, "m.reaction", rel({ rel_type: "m.annotation", event_id: "$e1", key: "x" }), "$e9"],
      [5, "m.room.message", rel({ event_id: "$e1" }), null],
      [6, "m.room.message", rel({ rel_type: "m.reference", event_id: 7 }), null],
    ];
    for (const [n, type, pdu, redactedBy] of rows)
      d.run(
        `INSERT INTO events (stream, event_id, room_id, type, sender, origin_server_ts, depth, pdu, redacted_by)
         VALUES (?, ?, '!r:hs', ?, '@a:hs', 1, 1, ?, ?)`,
        n,
        `$e${n}`,
        type,
        pdu,
        redactedBy,
      );
    d.close();
    const s = await openStore(`sqlite:${path}`, dir);
    try {
      const got = await s.relations.getRelationsOf(["$e1"], ["m.thread", "m.annotation", "m.reference"]);
      assert.deepEqual(
        got.map((r) => [r.eventId, r.relType, r.key]),
        [
          ["$e2", "m.thread", null],
          ["$e3", "m.annotation", "👍"],
        ],
      );
      assert.equal(await s.relations.hasAnnotation("$e1", "@a:hs", "m.reaction", "👍"), true);
    } finally {
      await s.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("sqlite: the room DAG migration backfills edges and extremities of a database made by the previous schema", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ami-sqlite-"));
  try {
    const path = join(dir, "dag.db");
    const d = new SqliteDb(path);
    const upto = MIGRATIONS.findIndex((m) => m.includes("CREATE TABLE event_edges"));
    d.migrate(MIGRATIONS.slice(0, upto));
    for (const [n, roomId, eventId, type, stateKey, pdu] of LINEAR_ROOMS) {
      if (n === 1 || n === 10)
        d.run("INSERT INTO rooms (room_id, version, creator, created_ts) VALUES (?, '11', '@a:hs', 1)", roomId);
      d.run(
        `INSERT INTO events (stream, event_id, room_id, type, state_key, sender, origin_server_ts, depth, pdu)
         VALUES (?, ?, ?, ?, ?, '@a:hs', 1, ?, ?)`,
        n,
        eventId,
        roomId,
        type,
        stateKey,
        n,
        pdu,
      );
      if (stateKey !== null)
        for (const table of ["state_history", "current_state"])
          d.run(
            `INSERT INTO ${table} (room_id, type, state_key, stream, event_id) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT DO UPDATE SET stream = excluded.stream, event_id = excluded.event_id`,
            roomId,
            type,
            stateKey,
            n,
            eventId,
          );
    }
    d.close();
    const s = await openStore(`sqlite:${path}`, dir);
    try {
      await checkDagBackfill(s);
    } finally {
      await s.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
