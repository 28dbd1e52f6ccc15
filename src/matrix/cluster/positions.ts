/**
 * Stream positions shared by several homeserver processes on one PostgreSQL database (docs/ARCHITECTURE.md
 * "Homeserver scale-out"), as Synapse's multi-writer streams: every process is a writer that takes positions from
 * one sequence (`ami_stream_seq`, no lock) and commits them concurrently with the others, so positions may commit
 * out of order across processes. Readers therefore never advance to a position they merely heard of; they advance
 * to the *persisted position*: the highest P such that every position <= P is committed or will never be.
 *
 * How a process computes it without asking the others to stop:
 * - Each writer owns a slot (0..MAX_WRITERS-1, a session advisory lock held for its life) and holds the slot's
 *   *busy* lock from before it takes positions until the write at them settled (committed or failed). A batch of
 *   room events takes it inside its own transaction (runInTx: transaction-scoped, gone with the commit or the
 *   rollback); other writes on the writer's own connection (run).
 * - A writer publishes, after each turn, its *safe* position (bus): no position <= safe will ever be committed by
 *   it later. With nothing in flight that is the highest position it knows was handed out — a later nextval is
 *   always above it; during a turn, what it knew before taking the turn's positions.
 * - Every writer registers its slot in `ami_stream_writers` before it takes its first position.
 * - The probe (one round trip): read the sequence's last value X, then try each other registered slot's busy lock
 *   in shared mode (and let it go at once). A writer whose busy lock was free at that moment has no turn in
 *   flight that began before X was read, so all its positions <= X are settled (a turn taking positions <= X began
 *   before the read, so it either still holds the lock or has ended). A writer registered after the read takes
 *   positions > X only. For a busy writer only its published safe counts. So persisted = min(X, published safe of
 *   each busy writer, this writer's own safe). A dead writer's session is gone, so are its locks: it holds nobody
 *   back (PostgreSQL rolled its open transaction back; its positions are a gap).
 * - The 1 s poll (lost bus messages, Redis down) waits for each busy lock instead (taking and releasing it: the
 *   writer's turn in flight ends within a commit), so it reaches X even when the others are never idle and their
 *   messages are lost; no writer waits for it longer than that one lock operation.
 * - A turn's own probe rides on a round trip it makes anyway (before COMMIT for runInTx, with the unlock for run);
 *   a bus message gets a probe of its own only when no turn is open here (that turn's closing probe, sent later,
 *   covers it), and messages within COALESCE_MS share one.
 * Known window (run only): the busy lock lives on the writer's lock connection, the write on a store connection; if
 * the lock connection alone dies mid-turn (or the process dies with a COMMIT already sent), readers may pass a
 * position that commits just after — stored, but a long-poll already past it does not return it.
 */
import pg from "pg";
import { AmiError } from "../../core/errors.ts";
import type { Logger } from "../../core/logger.ts";
import { parseUrl } from "../store/postgres/db.ts";
import type { StreamSequencer, TxTurn } from "../stream.ts";

/** Advisory lock keys: (namespace, key) pairs in the two-int form, so they never collide with other users' keys. */
const LOCK_NS = 0x616d69; // "ami"
/** A room's lock (PgRoomLocks per send, room-leases.ts across sends). */
export const ROOM_NS = LOCK_NS + 1;
/** Start-up (sequence set past what is stored) of one process at a time. */
const INIT_KEY = 1;
/** A writer's slot, held for its life; and its busy lock, held while it has positions not yet settled. */
export const SLOT_NS = LOCK_NS + 2;
const BUSY_NS = LOCK_NS + 3;
/** As many slots as `matrix.workers` may ask for. */
export const MAX_WRITERS = 64;
/** How long the blocking poll waits for one busy writer before giving up this round. */
const POLL_LOCK_TIMEOUT_MS = 2000;
/** Bus messages arriving within this long share one probe. */
const COALESCE_MS = 1;

export class PgSequencer implements StreamSequencer {
  readonly #url: string;
  readonly #log: Logger;
  #client: pg.Client | null = null;
  #connecting: Promise<pg.Client> | null = null;
  #slot = -1;
  /** The highest position this process knows was handed out (its own, others' published, the probe's). */
  #knownMax = 0;
  /** During a turn: the safe position published for this writer (what it knew before taking positions). */
  #floor: number | null = null;
  /** Other writers' published safe positions, by slot. */
  readonly #published = new Map<number, number>();
  /** The cluster-wide persisted position last computed. */
  #persisted = 0;
  /** Called after each turn with this writer's slot, its safe position and the positions it committed. */
  onTurn: (slot: number, safe: number, positions: number[]) => void = () => {};
  /** Called when the persisted position advances. */
  onPersisted: (pos: number) => void = () => {};

  constructor(url: string, log: Logger) {
    this.#url = url;
    this.#log = log;
  }

  get slot(): number {
    return this.#slot;
  }

  /** This writer's promise: it will never commit a position <= this later. */
  get safe(): number {
    return this.#floor ?? this.#knownMax;
  }

  /** Move the sequence past every stored position (a database written by one process has no sequence use yet). */
  async init(maxStored: number): Promise<void> {
    const c = await this.#conn();
    await c.query(`SELECT pg_advisory_lock(${LOCK_NS}, ${INIT_KEY})`);
    try {
      const { rows } = await c.query("SELECT last_value, is_called FROM ami_stream_seq");
      const last = rows[0].is_called ? Number(rows[0].last_value) : 0;
      if (last < maxStored) await c.query("SELECT setval('ami_stream_seq', $1)", [maxStored]);
      this.#knownMax = Math.max(last, maxStored);
    } finally {
      await c.query(`SELECT pg_advisory_unlock(${LOCK_NS}, ${INIT_KEY})`);
    }
  }

  async #conn(): Promise<pg.Client> {
    if (this.#client) return this.#client;
    if (!this.#connecting)
      this.#connecting = (async () => {
        const { connectionString, options } = parseUrl(this.#url);
        const c = new pg.Client({ connectionString, options, application_name: "ami-streams stream writer" });
        c.on("error", (e) => {
          this.#log.error("cluster: stream writer connection lost", { error: e.message });
          if (this.#client === c) this.#client = null;
        });
        try {
          await c.connect();
          // A slot of our own (a free one: its previous owner is gone with its session).
          let slot = -1;
          for (let s = 0; s < MAX_WRITERS && slot < 0; s++)
            if ((await c.query(`SELECT pg_try_advisory_lock(${SLOT_NS}, ${s}) AS got`)).rows[0].got) slot = s;
          if (slot < 0) throw new Error(`all ${MAX_WRITERS} writer slots are taken`);
          // Registered before any position is taken (the probe only looks at registered slots); the router fills
          // in its address (routing.ts).
          await c.query(
            `INSERT INTO ami_stream_writers (slot, url, secret) VALUES (${slot}, '', '')
             ON CONFLICT (slot) DO UPDATE SET url = '', secret = ''`,
          );
          this.#slot = slot;
        } catch (e) {
          await c.end().catch(() => {});
          throw new AmiError("AMI_UNAVAILABLE", `cluster: PostgreSQL: ${(e as Error).message}`);
        } finally {
          this.#connecting = null;
        }
        this.#client = c;
        return c;
      })();
    return this.#connecting;
  }

  /** Turns of this process, one after the other (the StreamWriter runs one write at a time anyway). */
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(n: number, fn: (positions: number[]) => Promise<T>): Promise<T> {
    const turn = () => this.#turn(n, fn);
    const p = this.#tail.then(turn, turn);
    this.#tail = p.catch(() => {});
    return p;
  }

  async #turn<T>(n: number, fn: (positions: number[]) => Promise<T>): Promise<T> {
    // Before the positions exist, this writer's promise is what it knew: the sequence only goes up from there.
    this.#floor = this.#knownMax;
    // Bus messages from now on are covered by the probe that ends this turn.
    this.#turnOpen = true;
    let ps: number[] = [];
    let c: pg.Client;
    try {
      c = await this.#conn();
      // One round trip: the busy lock, then the positions (integers only are interpolated).
      const res = (await c.query(
        `SELECT pg_advisory_lock(${BUSY_NS}, ${this.#slot}); SELECT nextval('ami_stream_seq') AS p FROM generate_series(1, ${n | 0})`,
      )) as unknown as pg.QueryResult[];
      ps = res[1].rows.map((r) => Number(r.p));
    } catch (e) {
      this.#floor = null;
      this.#turnOpen = false;
      this.refresh();
      throw e;
    }
    this.#knownMax = Math.max(this.#knownMax, ps[ps.length - 1]);
    try {
      return await fn(ps);
    } finally {
      // Not awaited here (the caller need not wait for it). The unlock carries the probe (same round trip): it
      // covers this turn's positions and every bus message heard since the turn began. The turn is published only
      // once the unlock ran: a probe that still found us busy after our message would hold its readers at our
      // previous safe position until something else made it probe again.
      this.#floor = null;
      this.#turnOpen = false;
      c.query(`SELECT pg_advisory_unlock(${BUSY_NS}, ${this.#slot}); ${this.#probeSql(false)}`)
        .then((res) => this.#set(this.#probed((res as unknown as pg.QueryResult[]).slice(1))))
        .catch((e) => {
          // The session is gone, so is the lock; the poll connection probes instead.
          this.#log.error("cluster: ending a stream turn failed", { error: String(e) });
          this.refresh();
        })
        .finally(() => this.onTurn(this.#slot, this.safe, ps));
    }
  }

  /**
   * A turn inside the write's own transaction (room events): `turn.open` takes the busy lock transaction-scoped and
   * the positions, after BEGIN in the same round trip; `turn.close` is the probe, before COMMIT in the same round
   * trip. The busy lock is held by the very transaction that writes, from before its positions are taken until it
   * commits or rolls back, and the turn costs no round trip besides its write's own.
   */
  runInTx<T>(n: number, fn: (turn: TxTurn) => Promise<T>): Promise<T> {
    const turn = () => this.#txTurn(n, fn);
    const p = this.#tail.then(turn, turn);
    this.#tail = p.catch(() => {});
    return p;
  }

  async #txTurn<T>(n: number, fn: (turn: TxTurn) => Promise<T>): Promise<T> {
    // The slot, registered before any position is taken.
    await this.#conn();
    this.#floor = this.#knownMax;
    this.#turnOpen = true;
    let ps: number[] = [];
    let probed: pg.QueryResult[] | null = null;
    try {
      return await fn({
        open: `SELECT pg_advisory_xact_lock(${BUSY_NS}, ${this.#slot}); SELECT nextval('ami_stream_seq') AS p FROM generate_series(1, ${n | 0})`,
        opened: (rows) => {
          ps = rows.map((r) => Number(r.p));
          if (ps.length) this.#knownMax = Math.max(this.#knownMax, ps[ps.length - 1]);
          return ps;
        },
        // Run before COMMIT, its answer used once COMMIT succeeded: it looks at the other writers only, and this
        // one's positions are settled by then.
        close: this.#probeSql(false),
        closing: () => {
          this.#turnOpen = false;
        },
        committed: (res) => {
          probed = res as pg.QueryResult[];
        },
      });
    } finally {
      this.#floor = null;
      this.#turnOpen = false;
      if (probed) this.#set(this.#probed(probed));
      else this.refresh();
      this.onTurn(this.#slot, this.safe, ps);
    }
  }

  /** Another writer published its safe position (bus). */
  heard(slot: number, safe: number): void {
    if (slot === this.#slot || !Number.isSafeInteger(safe) || !Number.isInteger(slot)) return;
    if ((this.#published.get(slot) ?? 0) < safe) this.#published.set(slot, safe);
    if (safe > this.#knownMax) this.#knownMax = safe;
    // A turn of ours in flight ends with a probe, sent after this message arrived: it covers it.
    if (this.#turnOpen) return;
    // Messages arriving within COALESCE_MS share one probe.
    if (this.#soon) return;
    this.#soon = setTimeout(() => {
      this.#soon = null;
      if (!this.#turnOpen) this.refresh();
    }, COALESCE_MS);
  }

  /** From the start of a turn until its closing probe is sent. */
  #turnOpen = false;
  #soon: NodeJS.Timeout | null = null;
  #probing: Promise<void> | null = null;
  #again = false;

  /** Recompute the persisted position (one probe at a time; calls meanwhile make one more). */
  refresh(): void {
    // Every position this process knows of is persisted already: a probe could only find positions nobody told it
    // of yet (their writer's message, or the poll, will).
    if (this.#persisted >= this.#knownMax) return;
    if (this.#probing) {
      this.#again = true;
      return;
    }
    this.#probing = (async () => {
      do {
        this.#again = false;
        try {
          this.#set(await this.#probe(false));
        } catch (e) {
          this.#log.debug("cluster: position probe failed", { error: String(e) });
        }
      } while (this.#again);
      this.#probing = null;
    })();
  }

  #set(p: number): void {
    if (p <= this.#persisted) return;
    this.#persisted = p;
    this.onPersisted(p);
  }

  /**
   * The persisted position, blocking: waits out the turns in flight (start-up, and the 1 s poll that covers lost
   * bus messages), and reports it.
   */
  async head(): Promise<number> {
    const p = await this.#probe(true);
    this.#set(p);
    return this.#persisted;
  }

  /** See the file comment. `blocking`: wait for each busy writer's turn to end instead of skipping it. */
  async #probe(blocking: boolean): Promise<number> {
    const c = await this.#pollConn();
    return this.#probed((await c.query(this.#probeSql(blocking))) as unknown as pg.QueryResult[]);
  }

  /** The probe's statements: the sequence's last value, then each other registered writer's busy lock. */
  #probeSql(blocking: boolean): string {
    const me = this.#slot;
    return (
      "SELECT last_value, is_called FROM ami_stream_seq; " +
      (blocking
        ? `SELECT slot, pg_advisory_lock_shared(${BUSY_NS}, slot) AS waited,
             pg_advisory_unlock_shared(${BUSY_NS}, slot) AS idle FROM ami_stream_writers WHERE slot <> ${me}`
        : `SELECT slot, CASE WHEN pg_try_advisory_lock_shared(${BUSY_NS}, slot)
             THEN pg_advisory_unlock_shared(${BUSY_NS}, slot) ELSE false END AS idle
             FROM ami_stream_writers WHERE slot <> ${me}`)
    );
  }

  /** The persisted position the probe's two results prove. */
  #probed(res: pg.QueryResult[]): number {
    const seq = res[0].rows[0];
    const x = seq.is_called ? Number(seq.last_value) : 0;
    if (x > this.#knownMax) this.#knownMax = x;
    let p = Math.min(x, this.safe);
    for (const r of res[1].rows) if (!r.idle) p = Math.min(p, this.#published.get(Number(r.slot)) ?? this.#persisted);
    return p;
  }

  #poll: pg.Client | null = null;
  async #pollConn(): Promise<pg.Client> {
    if (this.#poll) return this.#poll;
    const { connectionString, options } = parseUrl(this.#url);
    const c = new pg.Client({ connectionString, options, application_name: "ami-streams stream probe" });
    c.on("error", () => {
      if (this.#poll === c) this.#poll = null;
    });
    await c.connect();
    await c.query(`SET lock_timeout = ${POLL_LOCK_TIMEOUT_MS}`);
    this.#poll = c;
    return c;
  }

  async close(): Promise<void> {
    if (this.#soon) clearTimeout(this.#soon);
    this.#soon = null;
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
      // One round trip (the lock is held from building the event to its commit, so every trip counts): the room ID
      // goes in as an escaped literal, the simple-query protocol taking no parameters.
      const res = (await c.query(
        `BEGIN; SELECT pg_advisory_xact_lock(${ROOM_NS}, ${roomKey(roomId)}); ` +
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
