/**
 * Stream positions shared by several homeserver processes on one PostgreSQL database (docs/ARCHITECTURE.md
 * "Homeserver scale-out"). The ordering argument, in one line: a position is taken from a sequence only while
 * holding one cluster-wide advisory lock, and the lock is released only after the write at that position
 * committed (or failed) — so commits happen in position order across every process, and "position N is committed"
 * implies "every position below N is committed or will never be". Readers can then advance to any position they
 * hear of, with no gap to wait for (Synapse's multi-writer streams need per-writer positions and a minimum because
 * their writers commit concurrently; ours take turns for the commit only — building, signing and authorising
 * events, HTTP and /sync run in parallel on every process, and each turn commits a whole group of events).
 *
 * The lock is a session-level advisory lock on a dedicated connection: a process killed mid-write loses its
 * session, PostgreSQL rolls its open transaction back and frees the lock, and the positions it held are a gap.
 * `ami_stream_head` records the last position whose turn ended, for processes that missed the bus message.
 */
import pg from "pg";
import { AmiError } from "../../core/errors.ts";
import type { Logger } from "../../core/logger.ts";
import { parseUrl } from "../store/postgres/db.ts";
import type { StreamSequencer } from "../stream.ts";

/** Advisory lock keys: (namespace, key) pairs in the two-int form, so they never collide with other users' keys. */
const LOCK_NS = 0x616d69; // "ami"
const STREAM_KEY = 1;

export class PgSequencer implements StreamSequencer {
  readonly #url: string;
  readonly #log: Logger;
  #client: pg.Client | null = null;
  #connecting: Promise<pg.Client> | null = null;
  /** Called after each turn with the last position taken (the bus publishes it). */
  onTurn: (last: number) => void = () => {};

  constructor(url: string, log: Logger) {
    this.#url = url;
    this.#log = log;
  }

  /** Create the sequence and head row if missing; move the sequence past every stored position. */
  async init(maxStored: number): Promise<void> {
    const c = await this.#conn();
    await c.query(`SELECT pg_advisory_lock(${LOCK_NS}, ${STREAM_KEY})`);
    try {
      await c.query("CREATE SEQUENCE IF NOT EXISTS ami_stream_seq");
      await c.query(
        "CREATE TABLE IF NOT EXISTS ami_stream_head (one boolean PRIMARY KEY DEFAULT true, pos bigint NOT NULL)",
      );
      await c.query("INSERT INTO ami_stream_head (pos) VALUES (0) ON CONFLICT DO NOTHING");
      const { rows } = await c.query("SELECT last_value, is_called FROM ami_stream_seq");
      const last = rows[0].is_called ? Number(rows[0].last_value) : 0;
      if (last < maxStored) await c.query("SELECT setval('ami_stream_seq', $1)", [maxStored]);
      await c.query("UPDATE ami_stream_head SET pos = GREATEST(pos, $1)", [maxStored]);
    } finally {
      await c.query(`SELECT pg_advisory_unlock(${LOCK_NS}, ${STREAM_KEY})`);
    }
  }

  async #conn(): Promise<pg.Client> {
    if (this.#client) return this.#client;
    if (!this.#connecting)
      this.#connecting = (async () => {
        const { connectionString, options } = parseUrl(this.#url);
        const c = new pg.Client({ connectionString, options, application_name: "ami-streams stream lock" });
        c.on("error", (e) => {
          this.#log.error("cluster: stream lock connection lost", { error: e.message });
          if (this.#client === c) this.#client = null;
        });
        try {
          await c.connect();
        } catch (e) {
          throw new AmiError("AMI_UNAVAILABLE", `cluster: PostgreSQL: ${(e as Error).message}`);
        } finally {
          this.#connecting = null;
        }
        this.#client = c;
        return c;
      })();
    return this.#connecting;
  }

  /** Turns of this process, one after the other: the advisory lock is re-entrant within its session. */
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(n: number, fn: (first: number) => Promise<T>): Promise<T> {
    const turn = () => this.#turn(n, fn);
    const p = this.#tail.then(turn, turn);
    this.#tail = p.catch(() => {});
    return p;
  }

  async #turn<T>(n: number, fn: (first: number) => Promise<T>): Promise<T> {
    const c = await this.#conn();
    // One round trip: take the turn, then the positions (nextval only ever runs under the lock, so they are
    // consecutive). Integers only are interpolated.
    const res = (await c.query(
      `SELECT pg_advisory_lock(${LOCK_NS}, ${STREAM_KEY}); SELECT nextval('ami_stream_seq') AS p FROM generate_series(1, ${n | 0})`,
    )) as unknown as pg.QueryResult[];
    const ps = res[1].rows.map((r) => Number(r.p));
    const first = ps[0];
    const last = ps[ps.length - 1];
    try {
      return await fn(first);
    } finally {
      try {
        await c.query(
          `UPDATE ami_stream_head SET pos = GREATEST(pos, ${last}); SELECT pg_advisory_unlock(${LOCK_NS}, ${STREAM_KEY})`,
        );
      } catch (e) {
        // The session is gone, so is the lock: later writers continue past our positions.
        this.#log.error("cluster: ending a stream turn failed", { error: String(e) });
      }
      this.onTurn(last);
    }
  }

  /**
   * The last position whose turn ended (readers that missed the bus message catch up from here). When no turn is in
   * progress anywhere (the lock is free), every position the sequence gave out is committed or never will be, so
   * the head moves up to the sequence: a worker killed after its commit but before its turn ended (which left the
   * head behind) holds nobody back past the next poll. Runs on its own session, since the lock is re-entrant
   * within one and this process's turns take it on the other.
   */
  async head(): Promise<number> {
    const c = await this.#pollConn();
    const got = (await c.query(`SELECT pg_try_advisory_lock(${LOCK_NS}, ${STREAM_KEY}) AS got`)).rows[0].got;
    if (!got) return Number((await c.query("SELECT pos FROM ami_stream_head")).rows[0]?.pos ?? 0);
    try {
      const { rows } = await c.query(
        `UPDATE ami_stream_head SET pos = GREATEST(pos,
           (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM ami_stream_seq)) RETURNING pos`,
      );
      return Number(rows[0]?.pos ?? 0);
    } finally {
      await c.query(`SELECT pg_advisory_unlock(${LOCK_NS}, ${STREAM_KEY})`);
    }
  }

  #poll: pg.Client | null = null;
  async #pollConn(): Promise<pg.Client> {
    if (this.#poll) return this.#poll;
    const { connectionString, options } = parseUrl(this.#url);
    const c = new pg.Client({ connectionString, options, application_name: "ami-streams stream poll" });
    c.on("error", () => {
      if (this.#poll === c) this.#poll = null;
    });
    await c.connect();
    this.#poll = c;
    return c;
  }

  async close(): Promise<void> {
    const c = this.#client;
    const p = this.#poll;
    this.#client = null;
    this.#poll = null;
    await c?.end().catch(() => {});
    await p?.end().catch(() => {});
  }
}

/** A room's lock key: FNV-1a of its ID as a signed 32-bit integer (a collision only makes two rooms share a lock). */
export function roomKey(roomId: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < roomId.length; i++) {
    h ^= roomId.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}

/** Per-room send locks: `withRoom` runs `fn` while this process alone may persist events of the room. */
export class PgRoomLocks {
  readonly #pool: pg.Pool;

  constructor(url: string, size: number) {
    const { connectionString, options } = parseUrl(url);
    this.#pool = new pg.Pool({ connectionString, options, max: size, application_name: "ami-streams room locks" });
    this.#pool.on("error", () => {});
  }

  /**
   * Hold the room's transaction-scoped advisory lock for `fn`, and tell it the room's latest stored stream position
   * read under the lock (so a process sees whether another one wrote the room since it cached the room's head).
   */
  async withRoom<T>(roomId: string, fn: (latest: number) => Promise<T>): Promise<T> {
    const c = await this.#pool.connect();
    let broken = false;
    try {
      // One round trip (the lock is held while the send waits for its stream turn, so every trip counts): the
      // room ID goes in as an escaped literal, the simple-query protocol taking no parameters.
      const res = (await c.query(
        `BEGIN; SELECT pg_advisory_xact_lock(${LOCK_NS + 1}, ${roomKey(roomId)}); ` +
          `SELECT coalesce(max(stream), 0) AS m FROM events WHERE room_id = ${c.escapeLiteral(roomId)}`,
      )) as unknown as pg.QueryResult[];
      return await fn(Number(res[2].rows[0].m));
    } catch (e) {
      broken = true;
      throw e;
    } finally {
      try {
        await c.query(broken ? "ROLLBACK" : "COMMIT");
        c.release();
      } catch (e) {
        c.release(e as Error);
      }
    }
  }

  async close(): Promise<void> {
    await this.#pool.end().catch(() => {});
  }
}
