/**
 * Room leases (docs/ARCHITECTURE.md "Homeserver scale-out"): with sends routed to one writer per room
 * (routing.ts), taking the room's PostgreSQL lock for every send costs two round trips per event for nothing. A
 * writer therefore keeps the lock while the room is busy: the first send takes it as a session lock on this
 * process's lease connection (`pg_try_advisory_lock`, with the room's latest stored position, one round trip), the
 * following sends find it held and cost no round trip (nobody else can have written the room, so the cached head
 * is current), and it is let go once the room was idle for IDLE_MS or held for MAX_MS (so another worker's
 * membership change or a send during a change of writers waits at most that long). A room whose lock another
 * process holds falls back to the per-send transaction lock (positions.ts PgRoomLocks), which waits for it.
 * If the lease connection is lost, every lease is forgotten at once (its session's locks are gone).
 */
import pg from "pg";
import type { Logger } from "../../core/logger.ts";
import { parseUrl } from "../store/postgres/db.ts";
import { type PgRoomLocks, ROOM_NS, roomKey } from "./positions.ts";

const IDLE_MS = 50;
const MAX_MS = 1000;

interface Lease {
  key: number;
  since: number;
  active: number;
  timer: NodeJS.Timeout | null;
}

export class RoomLeases {
  readonly #url: string;
  readonly #locks: PgRoomLocks;
  readonly #log: Logger;
  readonly #leases = new Map<string, Lease>();
  #client: pg.Client | null = null;
  #connecting: Promise<pg.Client> | null = null;
  #closed = false;

  constructor(url: string, locks: PgRoomLocks, log: Logger) {
    this.#url = url;
    this.#locks = locks;
    this.#log = log;
  }

  /** Run `fn` while this process alone may write the room; `latest` as PgRoomLocks.withRoom (null: unchanged). */
  async withRoom<T>(roomId: string, fn: (latest: number | null) => Promise<T>): Promise<T> {
    let lease = this.#leases.get(roomId);
    let latest: number | null = null;
    if (!lease) {
      const got = await this.#acquire(roomId).catch((e) => {
        this.#log.debug("cluster: room lease failed", { error: String(e) });
        return null;
      });
      if (got === null) return this.#locks.withRoom(roomId, fn);
      // Another call of this process may have taken it meanwhile (the session lock is re-entrant: count both).
      lease = this.#leases.get(roomId);
      if (lease) await this.#unlock(roomKey(roomId));
      else {
        lease = { key: roomKey(roomId), since: Date.now(), active: 0, timer: null };
        this.#leases.set(roomId, lease);
      }
      latest = got;
    }
    lease.active++;
    if (lease.timer) clearTimeout(lease.timer);
    lease.timer = null;
    try {
      return await fn(latest);
    } finally {
      lease.active--;
      if (lease.active === 0 && this.#leases.get(roomId) === lease) {
        // Held long enough: let go now, before the room's next send can renew it (a timer would lose that race
        // under steady traffic, and another process waiting for the room would wait for ever).
        if (Date.now() - lease.since >= MAX_MS) this.#release(roomId, lease);
        else lease.timer = setTimeout(() => this.#release(roomId, lease!), IDLE_MS);
      }
    }
  }

  /** The room's lock as a lease: its latest stored position, or null when another process holds it. */
  async #acquire(roomId: string): Promise<number | null> {
    const c = await this.#conn();
    // Two statements in one round trip: the position is read after the lock is taken (a subquery in the same
    // SELECT may run first). The room ID goes in as an escaped literal (the simple-query protocol has no parameters).
    const res = (await c.query(
      `SELECT pg_try_advisory_lock(${ROOM_NS}, ${roomKey(roomId)}) AS got; ` +
        `SELECT coalesce(max(stream), 0) AS m FROM events WHERE room_id = ${c.escapeLiteral(roomId)}`,
    )) as unknown as pg.QueryResult[];
    return res[0].rows[0].got ? Number(res[1].rows[0].m) : null;
  }

  #release(roomId: string, lease: Lease): void {
    if (lease.active > 0 || this.#leases.get(roomId) !== lease) return;
    this.#leases.delete(roomId);
    void this.#unlock(lease.key);
  }

  async #unlock(key: number): Promise<void> {
    const c = this.#client;
    if (!c) return;
    await c.query(`SELECT pg_advisory_unlock(${ROOM_NS}, ${key})`).catch(() => {});
  }

  async #conn(): Promise<pg.Client> {
    if (this.#client) return this.#client;
    if (this.#closed) throw new Error("closed");
    if (!this.#connecting)
      this.#connecting = (async () => {
        const { connectionString, options } = parseUrl(this.#url);
        const c = new pg.Client({ connectionString, options, application_name: "ami-streams room leases" });
        c.on("error", (e) => {
          this.#log.warn("cluster: room lease connection lost", { error: e.message });
          if (this.#client !== c) return;
          this.#client = null;
          // The session's locks are gone: no lease is held any more.
          for (const l of this.#leases.values()) if (l.timer) clearTimeout(l.timer);
          this.#leases.clear();
        });
        try {
          await c.connect();
        } finally {
          this.#connecting = null;
        }
        this.#client = c;
        return c;
      })();
    return this.#connecting;
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const l of this.#leases.values()) if (l.timer) clearTimeout(l.timer);
    this.#leases.clear();
    const c = this.#client;
    this.#client = null;
    await c?.end().catch(() => {});
  }
}
