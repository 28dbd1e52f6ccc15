import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import pg from "pg";
import { AmiError } from "../../../core/errors.ts";
import { checkDagBackfill, LINEAR_ROOMS } from "../conformance/dag-migration.ts";
import { runStoreConformance } from "../conformance.ts";
import { openStore } from "../open.ts";
import type { Store } from "../types.ts";
import { parseUrl } from "./db.ts";
import { MIGRATIONS } from "./schema.ts";

// A throwaway database for this file; each test gets its own schema in it (?schema=), so tests stay isolated
// without paying for a CREATE DATABASE each.
const ADMIN_URL = process.env.AMI_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const dbName = `ami_test_${randomBytes(6).toString("hex")}`;
const dbUrl = (() => {
  const u = new URL(ADMIN_URL);
  u.pathname = `/${dbName}`;
  return u.toString();
})();

async function admin(sql: string, url = ADMIN_URL): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

before(() => admin(`CREATE DATABASE ${dbName}`));
after(() => admin(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`));

runStoreConformance("postgres", async () => {
  const url = `${dbUrl}?schema=t_${randomBytes(6).toString("hex")}`;
  const open: Store[] = [];
  const openOne = async () => {
    const s = await openStore(url, "/nonexistent");
    open.push(s);
    return s;
  };
  return {
    store: await openOne(),
    reopen: openOne,
    database: url,
    cleanup: async () => {
      for (const s of open) await s.close();
    },
  };
});

test("postgres: parseUrl keeps the URL's options, adds search_path, hides the password", () => {
  const p = parseUrl(
    "postgres://u:pw@db.example:6543/hs?schema=my_hs&options=-c%20synchronous_commit%3Doff&sslmode=disable",
  );
  assert.equal(p.schema, "my_hs");
  assert.equal(p.options, "-c synchronous_commit=off -c search_path=my_hs");
  assert.ok(!p.connectionString.includes("schema=") && !p.connectionString.includes("options="));
  assert.match(p.connectionString, /sslmode=disable/);
  assert.equal(p.where, "db.example:6543/hs");
  assert.equal(parseUrl("postgresql://localhost/x").schema, "ami_matrix");
});

test("postgres: two schemas in one database are separate stores; a newer schema is refused", async () => {
  const a = await openStore(`${dbUrl}?schema=iso_a`, "/tmp");
  const b = await openStore(`${dbUrl}?schema=iso_b`, "/tmp");
  try {
    await a.rooms.createRoom({ roomId: "!r:hs", version: "11", creator: "@a:hs", createdTs: 1, isPublic: false });
    assert.equal(await b.rooms.getRoom("!r:hs"), null);
    assert.equal(await a.rooms.countRooms(), 1);
  } finally {
    await a.close();
    await b.close();
  }
  await admin(`INSERT INTO iso_a.schema_version (version, applied_ts) VALUES (${MIGRATIONS.length + 1}, 0)`, dbUrl);
  await assert.rejects(
    openStore(`${dbUrl}?schema=iso_a`, "/tmp"),
    (e: unknown) => e instanceof AmiError && /newer/.test(e.message),
  );
});

test("postgres: concurrent init() of a fresh schema migrates once", async () => {
  const url = `${dbUrl}?schema=race`;
  const stores = await Promise.all(Array.from({ length: 4 }, () => openStore(url, "/tmp")));
  for (const s of stores) await s.close();
  const c = new pg.Client({ connectionString: dbUrl });
  await c.connect();
  try {
    const r = await c.query("SELECT count(*)::int AS n FROM race.schema_version");
    assert.equal(r.rows[0].n, MIGRATIONS.length);
  } finally {
    await c.end();
  }
});

test("postgres: migration 2 keeps recorded transaction IDs, scoped to the /send path of their event", async () => {
  const schema = `mig_${randomBytes(4).toString("hex")}`;
  await admin(
    `CREATE SCHEMA ${schema}; SET search_path = ${schema};
     CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_ts BIGINT NOT NULL);
     ${MIGRATIONS[0]}
     INSERT INTO schema_version (version, applied_ts) VALUES (1, 0);
     INSERT INTO rooms (room_id, version, creator, created_ts) VALUES ('!r:hs', '11', '@a:hs', 1);
     INSERT INTO events (stream, event_id, room_id, type, sender, origin_server_ts, depth, pdu)
       VALUES (1, '$e', '!r:hs', 'm.room.message', '@a:hs', 1, 1, '{}');
     INSERT INTO event_txns (user_id, device_id, txn_id, event_id) VALUES ('@a:hs', 'D', 't', '$e');`,
    dbUrl,
  );
  const s = await openStore(`${dbUrl}?schema=${schema}`, "/tmp");
  try {
    assert.equal(await s.events.getTxnEvent("@a:hs", "D", "send/!r:hs/m.room.message", "t"), "$e");
    assert.equal(await s.events.getTxnEvent("@a:hs", "D", "send/!other:hs/m.room.message", "t"), null);
  } finally {
    await s.close();
  }
});

test("postgres: the relations migration backfills the relations of stored events", async () => {
  const schema = `mig_${randomBytes(4).toString("hex")}`;
  const upto = MIGRATIONS.findIndex((m) => m.includes("CREATE TABLE event_relations"));
  const rel = (r: object) => JSON.stringify({ content: { "m.relates_to": r } }).replaceAll("'", "''");
  await admin(
    `CREATE SCHEMA ${schema}; SET search_path = ${schema};
     CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_ts BIGINT NOT NULL);
     ${MIGRATIONS.slice(0, upto).join(";\n")};
     INSERT INTO schema_version (version, applied_ts) SELECT g, 0 FROM generate_series(1, ${upto}) g;
     INSERT INTO rooms (room_id, version, creator, created_ts) VALUES ('!r:hs', '11', '@a:hs', 1);
     INSERT INTO events (stream, event_id, room_id, type, sender, origin_server_ts, depth, pdu, redacted_by) VALUES
       (1, '$e1', '!r:hs', 'm.room.message', '@a:hs', 1, 1, '{}', NULL),
       (2, '$e2', '!r:hs', 'm.room.message', '@a:hs', 1, 1, '${rel({ rel_type: "m.thread", event_id: "$e1" })}', NULL),
       (3, '$e3', '!r:hs', 'm.reaction', '@a:hs', 1, 1,
        '${rel({ rel_type: "m.annotation", event_id: "$e1", key: "👍" })}', NULL),
       (4, '$e4', '!r:hs', 'm.reaction', '@a:hs', 1, 1,
        '${rel({ rel_type: "m.annotation", event_id: "$e1", key: "x" })}', '$e9'),
       (5, '$e5', '!r:hs', 'm.room.message', '@a:hs', 1, 1, '${rel({ event_id: "$e1" })}', NULL),
       (6, '$e6', '!r:hs', 'm.room.message', '@a:hs', 1, 1, '${rel({ rel_type: "m.reference", event_id: 7 })}', NULL);`,
    dbUrl,
  );
  const s = await openStore(`${dbUrl}?schema=${schema}`, "/tmp");
  try {
    const got = await s.relations.getRelationsOf(["$e1"], ["m.thread", "m.annotation", "m.reference"]);
    assert.deepEqual(
      got.map((r) => [r.eventId, r.relType, r.key]),
      [
        ["$e2", "m.thread", null],
        ["$e3", "m.annotation", "👍"],
      ],
    );
  } finally {
    await s.close();
  }
});

test("postgres: the room DAG migration backfills edges and extremities of a database made by the previous schema", async () => {
  const schema = `mig_${randomBytes(4).toString("hex")}`;
  const upto = MIGRATIONS.findIndex((m) => m.includes("CREATE TABLE event_edges"));
  const c = new pg.Client({ connectionString: dbUrl });
  await c.connect();
  try {
    await c.query(
      `CREATE SCHEMA ${schema}; SET search_path = ${schema};
       CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_ts BIGINT NOT NULL);
       ${MIGRATIONS.slice(0, upto).join(";\n")};
       INSERT INTO schema_version (version, applied_ts) SELECT g, 0 FROM generate_series(1, ${upto}) g;
       INSERT INTO rooms (room_id, version, creator, created_ts) VALUES ('!a:hs', '11', '@a:hs', 1), ('!b:hs', '11', '@a:hs', 1);`,
    );
    for (const [n, roomId, eventId, type, stateKey, pdu] of LINEAR_ROOMS) {
      await c.query(
        `INSERT INTO events (stream, event_id, room_id, type, state_key, sender, origin_server_ts, depth, pdu)
         VALUES ($1, $2, $3, $4, $5, '@a:hs', 1, $1, $6)`,
        [n, eventId, roomId, type, stateKey, pdu],
      );
      if (stateKey !== null)
        for (const table of ["state_history", "current_state"])
          await c.query(
            `INSERT INTO ${table} (room_id, type, state_key, stream, event_id) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (room_id, type, state_key${table === "state_history" ? ", stream" : ""})
             DO UPDATE SET stream = excluded.stream, event_id = excluded.event_id`,
            [roomId, type, stateKey, n, eventId],
          );
    }
  } finally {
    await c.end();
  }
  const s = await openStore(`${dbUrl}?schema=${schema}`, "/tmp");
  try {
    await checkDagBackfill(s);
  } finally {
    await s.close();
  }
});
