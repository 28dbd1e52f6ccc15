/**
 * Event persisters by room (docs/ARCHITECTURE.md "Homeserver scale-out"), as Synapse shards its event persisters:
 * a room's local sends are persisted by one writer, the live writer its room ID hashes to. A send that lands on
 * another worker (SO_REUSEPORT spreads connections, not rooms) is forwarded to that writer over loopback HTTP, so a
 * room's sends never alternate between processes (each switch costs the other a head reload under the room's
 * PostgreSQL lock) and each writer group-commits its own rooms' sends.
 *
 * The hop is a length-prefixed JSON frame on one loopback TCP connection per owner, many sends in flight on it
 * (each frame carries its ID), rather than an HTTP request per send: with N workers (N-1)/N of the sends are
 * forwarded, and node:http's client and server (headers, streams, agent, URL parsing) cost more CPU per forwarded
 * send than the frame's JSON (docs/PERFORMANCE.md "Scale-out, fourth version").
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
import { createConnection, createServer, type Server, type Socket } from "node:net";
import pg from "pg";
import { AmiError, type ErrorCode, toAmiError } from "../../core/errors.ts";
import type { Logger } from "../../core/logger.ts";
import type { SendEventInput } from "../hs.ts";
import { parseUrl } from "../store/postgres/db.ts";
import { roomKey, SLOT_NS } from "./positions.ts";

/** Registry URLs of the framed forward listener (an older `http://` row is never spoken to: null, persist here). */
const SCHEME = "ami-fwd://";
/**
 * A forwarded send not answered in this time is persisted here instead (the owner may be frozen: a long GC pause, a
 * stopped VM, SIGSTOP; its slot lock keeps it "live"). Safe if the owner was only slow: the room's lock and the
 * transaction ID make the second attempt return the event the first one stored.
 */
const FORWARD_TIMEOUT_MS = 5_000;
/** After a forward to a writer failed or timed out, its rooms are persisted locally for this long. */
const SUSPECT_MS = 10_000;
/** A frame (a forwarded send, or its answer) larger than this closes the connection. */
const MAX_BODY = 256 * 1024;
/** A connection that leaves a frame unfinished for this long is closed (a slow or half-open peer holds nothing). */
const PARTIAL_FRAME_MS = 10_000;

export type SendHandler = (input: SendEventInput) => Promise<{ eventId: string; stream: number }>;

export interface Writer {
  slot: number;
  url: string;
  secret: string;
}

/** A forwarded send: `i` its ID on the connection, `s` the owner's secret. */
interface Ask {
  i: number;
  s: string;
  input: SendEventInput;
}
/** Its answer: the status an HTTP reply would have had, and the body (the send's result or `{errcode, error}`). */
interface Answer {
  i: number;
  st: number;
  b: Record<string, unknown>;
}

/**
 * Frames of 4-byte big-endian length + UTF-8 JSON, read from `socket`; a malformed or oversized one ends it, and so
 * does a frame left unfinished for PARTIAL_FRAME_MS (an idle connection between frames stays open).
 */
function readFrames(socket: Socket, onFrame: (msg: unknown) => void): void {
  let buf: Buffer = Buffer.alloc(0);
  let partial = false;
  socket.on("timeout", () => socket.destroy(new Error("cluster forward: frame left unfinished")));
  socket.on("data", (chunk: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    let at = 0;
    while (buf.length - at >= 4) {
      const len = buf.readUInt32BE(at);
      if (len > MAX_BODY) {
        socket.destroy(new Error("cluster forward: frame too large"));
        return;
      }
      if (buf.length - at - 4 < len) break;
      let msg: unknown;
      try {
        msg = JSON.parse(buf.toString("utf8", at + 4, at + 4 + len));
      } catch {
        socket.destroy(new Error("cluster forward: malformed frame"));
        return;
      }
      at += 4 + len;
      onFrame(msg);
    }
    buf = at === buf.length ? Buffer.alloc(0) : buf.subarray(at);
    if (partial !== buf.length > 0) {
      partial = buf.length > 0;
      socket.setTimeout(partial ? PARTIAL_FRAME_MS : 0);
    }
  });
}

function writeFrame(socket: Socket, msg: unknown): void {
  const body = Buffer.from(JSON.stringify(msg), "utf8");
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(body.length, 0);
  socket.write(Buffer.concat([head, body]));
}

/** One connection to an owner, its sends in flight by ID. */
interface Line {
  socket: Socket;
  next: number;
  pending: Map<number, { resolve: (a: Answer | null) => void; timer: NodeJS.Timeout }>;
}

export class RoomRouter {
  readonly #dbUrl: string;
  readonly #log: Logger;
  readonly #secret = randomBytes(24).toString("hex");
  #server: Server | null = null;
  readonly #accepted = new Set<Socket>();
  /** Connections to owners, by their registry URL. */
  readonly #lines = new Map<string, Line>();
  #url = "";
  #closed = false;
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
    const server = createServer({ noDelay: true }, (socket) => this.#accept(socket));
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
    server.on("error", (e) => this.#log.warn("cluster: forward listener error", { error: String(e) }));
    const port = (server.address() as { port: number }).port;
    this.#url = `${SCHEME}127.0.0.1:${port}`;
    await this.refresh();
  }

  /** The framed listener's registry URL (`ami-fwd://127.0.0.1:PORT`; empty before `start`). */
  get url(): string {
    return this.#url;
  }

  /** Where forwarded sends are persisted (the room service). */
  serve(handler: SendHandler): void {
    this.#handler = handler;
  }

  #accept(socket: Socket): void {
    this.#accepted.add(socket);
    socket.on("close", () => this.#accepted.delete(socket));
    socket.on("error", () => {});
    readFrames(socket, (m) => {
      const ask = m as Partial<Ask> | null;
      if (!ask || typeof ask !== "object" || !Number.isSafeInteger(ask.i)) {
        socket.destroy();
        return;
      }
      void this.#answer(ask).then((a) => {
        if (socket.destroyed) return;
        writeFrame(socket, a);
        // A peer without this worker's secret (a stale registry row, or not a worker at all) gets nothing more.
        if (ask.s !== this.#secret) socket.end();
      });
    });
  }

  async #answer(ask: Partial<Ask>): Promise<Answer> {
    try {
      // A stale registry row may name this port for another writer: 503 tells the forwarder to persist it itself.
      if (ask.s !== this.#secret) throw new AmiError("AMI_UNAVAILABLE", "Not this worker's cluster secret");
      if (!this.#handler) throw new AmiError("AMI_UNAVAILABLE", "This worker is starting");
      const input = ask.input;
      if (!input || typeof input !== "object" || typeof input.roomId !== "string")
        throw new AmiError("AMI_INVALID_INPUT", "Malformed forwarded send");
      return { i: ask.i!, st: 200, b: await this.#handler(input) };
    } catch (e) {
      const err = toAmiError(e);
      return { i: ask.i!, st: err.status, b: err.toJSON() };
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
  async forward(owner: Writer, input: SendEventInput): Promise<{ eventId: string; stream: number } | null> {
    // A writer registers its slot (positions.ts) before its router fills in its address: read in between, the row
    // has no URL yet. Persist here, and re-read the writers.
    if (!owner.url.startsWith(SCHEME)) {
      void this.refresh().catch(() => {});
      return null;
    }
    const a = await this.#ask(owner, input);
    if (!a) return null;
    const json = a.b;
    if (a.st === 200 && typeof json?.eventId === "string" && typeof json.stream === "number")
      return { eventId: json.eventId, stream: json.stream };
    // The owner is starting or going away: persist here.
    if (a.st === 503 || typeof json?.errcode !== "string") return null;
    const { errcode, error, ...extra } = json;
    throw new AmiError(errcode as ErrorCode, String(error ?? errcode), extra, a.st);
  }

  /** One forwarded send on the owner's connection: its answer, or null (unreachable, timed out, closed). */
  #ask(owner: Writer, input: SendEventInput): Promise<Answer | null> {
    const line = this.#line(owner);
    return new Promise((resolve) => {
      const i = line.next++;
      const timer = setTimeout(() => {
        line.pending.delete(i);
        this.#failed(owner, new Error("forward timed out"));
        resolve(null);
      }, FORWARD_TIMEOUT_MS);
      line.pending.set(i, { resolve, timer });
      writeFrame(line.socket, { i, s: owner.secret, input } satisfies Ask);
    });
  }

  #failed(owner: Writer, e: unknown): void {
    // close() ends the connections: their sends in flight are persisted by their callers, nothing to re-read.
    if (this.#closed) return;
    this.#log.debug("cluster: forwarding a send failed; persisting it here", { error: String(e) });
    this.#suspect.set(owner.slot, Date.now() + SUSPECT_MS);
    void this.refresh().catch(() => {});
  }

  #line(owner: Writer): Line {
    const known = this.#lines.get(owner.url);
    if (known && !known.socket.destroyed) return known;
    const [host, port] = owner.url.slice(SCHEME.length).split(":");
    const socket = createConnection({ host, port: Number(port), noDelay: true });
    const line: Line = { socket, next: 1, pending: new Map() };
    this.#lines.set(owner.url, line);
    readFrames(socket, (m) => {
      const a = m as Partial<Answer> | null;
      const p = a && typeof a === "object" && typeof a.i === "number" ? line.pending.get(a.i) : undefined;
      if (!p) return;
      line.pending.delete(a!.i!);
      clearTimeout(p.timer);
      p.resolve(typeof a!.st === "number" && a!.b && typeof a!.b === "object" ? (a as Answer) : null);
    });
    let failure: unknown = null;
    socket.on("error", (e) => {
      failure = e;
    });
    socket.on("close", () => {
      if (this.#lines.get(owner.url) === line) this.#lines.delete(owner.url);
      if (line.pending.size === 0) return;
      this.#failed(owner, failure ?? new Error("connection closed"));
      for (const p of line.pending.values()) {
        clearTimeout(p.timer);
        p.resolve(null);
      }
      line.pending.clear();
    });
    return line;
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
    this.#closed = true;
    for (const line of this.#lines.values()) line.socket.destroy();
    this.#lines.clear();
    const server = this.#server;
    this.#server = null;
    for (const s of this.#accepted) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    const c = this.#db;
    this.#db = null;
    await c?.end().catch(() => {});
  }
}
