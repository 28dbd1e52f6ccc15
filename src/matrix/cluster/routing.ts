/**
 * Event persisters by room (docs/ARCHITECTURE.md "Homeserver scale-out"), as Synapse shards its event persisters:
 * a room's local sends are persisted by one writer, the live writer its room ID hashes to. A send that lands on
 * another worker (SO_REUSEPORT spreads connections, not rooms) is forwarded to that writer over loopback HTTP, so a
 * room's sends never alternate between processes (each switch costs the other a head reload under the room's
 * PostgreSQL lock) and each writer group-commits its own rooms' sends.
 *
 * Routing is an optimisation, never a correctness condition: the room's PostgreSQL lock still guards every write
 * (Rooms.#withLock), so a send handled by the "wrong" worker — views of the live writers differ for a moment, a
 * writer died, a forward failed — is still persisted correctly. A forwarded send is always handled where it lands
 * (one hop at most), and a forward that fails before an answer is handled locally (the transaction ID, stored with
 * the event, makes a retry of a send that did commit return the same event).
 *
 * Writers register `(slot, url, secret)` in `ami_stream_writers` (the slot from positions.ts); a writer is live
 * while its slot's advisory lock is held, i.e. while its session exists.
 */
import { randomBytes } from "node:crypto";
import { Agent, request } from "node:http";
import pg from "pg";
import { AmiError, type ErrorCode } from "../../core/errors.ts";
import { readJson } from "../../core/http/body.ts";
import { sendError, sendJson } from "../../core/http/reply.ts";
import { createHttpListener, type HttpListener } from "../../core/http/server.ts";
import type { Logger } from "../../core/logger.ts";
import type { SendEventInput } from "../hs.ts";
import { parseUrl } from "../store/postgres/db.ts";
import { roomKey, SLOT_NS } from "./positions.ts";

const PATH = "/_ami/cluster/send";
/**
 * A forwarded send not answered in this time is persisted here instead (the owner may be frozen: a long GC pause, a
 * stopped VM, SIGSTOP; its slot lock keeps it "live"). Safe if the owner was only slow: the room's lock and the
 * transaction ID make the second attempt return the event the first one stored.
 */
const FORWARD_TIMEOUT_MS = 5_000;
/** After a forward to a writer failed or timed out, its rooms are persisted locally for this long. */
const SUSPECT_MS = 10_000;
const MAX_BODY = 256 * 1024;

export type SendHandler = (input: SendEventInput) => Promise<{ eventId: string; stream: number }>;

export interface Writer {
  slot: number;
  url: string;
  secret: string;
}

export class RoomRouter {
  readonly #dbUrl: string;
  readonly #log: Logger;
  readonly #secret = randomBytes(24).toString("hex");
  readonly #agent = new Agent({ keepAlive: true, maxSockets: 256 });
  #listener: HttpListener | null = null;
  #url = "";
  #db: pg.Client | null = null;
  #registered = -1;
  /** Live writers, by slot order (every worker computes the same owner from the same list). */
  #live: Writer[] = [];
  #handler: SendHandler | null = null;
  /** This writer's slot (positions.ts; it may change after a lost connection). */
  readonly #slot: () => number;
  /** Writers (by slot) whose last forward failed, until when: sends for their rooms are persisted here meanwhile. */
  readonly #suspect = new Map<number, number>();

  constructor(dbUrl: string, slot: () => number, log: Logger) {
    this.#dbUrl = dbUrl;
    this.#slot = slot;
    this.#log = log;
  }

  /** Listen on loopback for forwarded sends and register this writer. */
  async start(): Promise<void> {
    this.#listener = createHttpListener({
      name: "matrix cluster",
      log: this.#log,
      handler: (req, res, target) => this.#serve(req, res, target.pathname),
    });
    const port = await this.#listener.listen(0, "127.0.0.1");
    this.#url = `http://127.0.0.1:${port}`;
    await this.refresh();
  }

  /** Where forwarded sends are persisted (the room service). */
  serve(handler: SendHandler): void {
    this.#handler = handler;
  }

  async #serve(req: import("node:http").IncomingMessage, res: import("node:http").ServerResponse, path: string) {
    try {
      if (req.method !== "POST" || path !== PATH) throw new AmiError("M_NOT_FOUND", "Unknown cluster route");
      // A stale registry row may name this port for another writer: 503 tells the forwarder to persist it itself.
      if (req.headers["x-ami-cluster"] !== this.#secret)
        throw new AmiError("AMI_UNAVAILABLE", "Not this worker's cluster secret");
      if (!this.#handler) throw new AmiError("AMI_UNAVAILABLE", "This worker is starting");
      const input = (await readJson(req, MAX_BODY)) as SendEventInput;
      if (!input || typeof input !== "object" || typeof input.roomId !== "string")
        throw new AmiError("AMI_INVALID_INPUT", "Malformed forwarded send");
      const out = await this.#handler(input);
      sendJson(res, 200, out);
    } catch (e) {
      sendError(res, e);
    }
  }

  /** The live writer that persists `roomId`'s sends, or null when that is this one (or nobody is known). */
  ownerOf(roomId: string): Writer | null {
    const live = this.#live;
    if (live.length < 2) return null;
    const w = live[(roomKey(roomId) >>> 0) % live.length];
    if (w.slot === this.#slot()) return null;
    const until = this.#suspect.get(w.slot);
    if (until !== undefined) {
      if (Date.now() < until) return null;
      this.#suspect.delete(w.slot);
    }
    return w;
  }

  /**
   * Send through `owner`. Resolves with its answer; rejects with the owner's AmiError (forbidden, unknown room...)
   * as is; resolves null when the owner could not be reached (the caller persists the send itself).
   */
  forward(owner: Writer, input: SendEventInput): Promise<{ eventId: string; stream: number } | null> {
    // A writer registers its slot (positions.ts) before its router fills in its address: read in between, the row
    // has no URL yet (a request to it threw "Invalid URL" and failed the send). Persist here, and re-read the writers.
    if (!owner.url) {
      void this.refresh().catch(() => {});
      return Promise.resolve(null);
    }
    const body = JSON.stringify(input);
    return new Promise((resolve, reject) => {
      const req = request(
        `${owner.url}${PATH}`,
        {
          method: "POST",
          agent: this.#agent,
          timeout: FORWARD_TIMEOUT_MS,
          headers: {
            "content-type": "application/json",
            "content-length": Buffer.byteLength(body),
            "x-ami-cluster": owner.secret,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", () => resolve(null));
          res.on("end", () => {
            let json: { eventId?: unknown; stream?: unknown; errcode?: unknown; error?: unknown } | null;
            try {
              json = JSON.parse(Buffer.concat(chunks).toString("utf8"));
            } catch {
              return resolve(null);
            }
            if (res.statusCode === 200 && typeof json?.eventId === "string" && typeof json.stream === "number")
              return resolve({ eventId: json.eventId, stream: json.stream });
            // The owner is starting or going away: persist here.
            if (res.statusCode === 503 || typeof json?.errcode !== "string") return resolve(null);
            const { errcode, error, ...extra } = json;
            reject(new AmiError(errcode as ErrorCode, String(error ?? errcode), extra, res.statusCode));
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error("forward timed out")));
      req.on("error", (e) => {
        this.#log.debug("cluster: forwarding a send failed; persisting it here", { error: String(e) });
        this.#suspect.set(owner.slot, Date.now() + SUSPECT_MS);
        void this.refresh().catch(() => {});
        resolve(null);
      });
      req.end(body);
    });
  }

  /** Re-register (a new slot after a lost connection) and re-read the live writers. */
  async refresh(): Promise<void> {
    const c = await this.#conn();
    const slot = this.#slot();
    if (slot >= 0 && slot !== this.#registered) {
      await c.query(
        `INSERT INTO ami_stream_writers (slot, url, secret) VALUES ($1, $2, $3)
         ON CONFLICT (slot) DO UPDATE SET url = EXCLUDED.url, secret = EXCLUDED.secret`,
        [slot, this.#url, this.#secret],
      );
      this.#registered = slot;
    }
    // A slot whose lock can be taken has no writer: its row is stale.
    const res = (await c.query(
      `SELECT slot, url, secret, NOT pg_try_advisory_lock_shared(${SLOT_NS}, slot) AS live
         FROM ami_stream_writers ORDER BY slot; SELECT pg_advisory_unlock_all()`,
    )) as unknown as pg.QueryResult[];
    this.#live = res[0].rows
      .filter((r) => r.live || r.slot === slot)
      .map((r) => ({ slot: Number(r.slot), url: String(r.url), secret: String(r.secret) }));
  }

  async #conn(): Promise<pg.Client> {
    if (this.#db) return this.#db;
    const { connectionString, options } = parseUrl(this.#dbUrl);
    const c = new pg.Client({ connectionString, options, application_name: "ami-streams room router" });
    c.on("error", () => {
      if (this.#db === c) this.#db = null;
    });
    await c.connect();
    this.#db = c;
    return c;
  }

  /** Live writer slots (tests, monitor). */
  get live(): number[] {
    return this.#live.map((w) => w.slot);
  }

  async close(): Promise<void> {
    this.#agent.destroy();
    await this.#listener?.close();
    const c = this.#db;
    this.#db = null;
    await c?.end().catch(() => {});
  }
}
