/**
 * WebSocket event streaming (docs/matrix-websocket.md): every connection receives exactly what its /sync would
 * deliver, as `sync` frames computed by the /sync engine itself (computeSync) from the last token sent.
 *
 * Costs are kept per hub, not per connection: one notifier subscription wakes every connection (no waiter or
 * timer each), one 1 s sweep does pings, auth deadlines and slow-consumer checks, and at most `concurrency`
 * connections compute at a time through one queue, so a burst of events coalesces into one frame per
 * connection instead of one computation per event per connection. When only plain room events happened
 * (StreamChanges in changes.ts knows), only those rooms' members wake, and their frames are built from slices
 * shared by every connection (service/sync-fast.ts) instead of one full computeSync each.
 */
import type { IncomingMessage, Server } from "node:http";
import type { Duplex } from "node:stream";
import { type WebSocket, WebSocketServer } from "ws";
import { toAmiError } from "../../core/errors.ts";
import type { Homeserver } from "../hs.ts";
import type { Requester } from "../http/types.ts";
import { type Filter, resolveSyncFilter } from "../service/filters.ts";
import { computeSync } from "../service/sync.ts";
import { fastSync } from "../service/sync-fast.ts";
import { touchPresence } from "../service/sync-presence.ts";
import { parseSyncToken, type SyncToken } from "../service/sync-token.ts";
import { StreamChanges } from "./changes.ts";
import {
  CloseCode,
  closeReason,
  DEFAULT_TUNABLES,
  parseClientFrame,
  syncFrame,
  WS_PATH,
  type WsTunables,
} from "./protocol.ts";

/** One connection's state: deliberately small (memory per idle connection is a target). */
interface Conn {
  ws: WebSocket;
  ip: string;
  /** Set once authenticated. */
  requester: Requester | null;
  /** Interned: connections with the same filter share the object and its key (the slice cache key). */
  filter: Filter;
  filterKey: string;
  /** The position of the last frame sent (or skipped as empty); null until the first frame. */
  since: SyncToken | null;
  /** `?ack=true`: a frame carrying to-device messages must be acked before computing past it. */
  ackMode: boolean;
  /** next_batch of a frame waiting for its ack (ack mode only). */
  unacked: string | null;
  /** Unparsed query, kept only until authentication. */
  query: URLSearchParams | null;
  openedAt: number;
  /** When the write buffer went over the bound (0 = not blocked). */
  blockedAt: number;
  /** Queued or computing; `dirty` asks for one more pass after the current one. */
  state: 0 | 1 | 2;
  dirty: boolean;
  alive: boolean;
  closed: boolean;
}

function destroySocket(this: Duplex): void {
  this.destroy();
}

const IDLE = 0;
const QUEUED = 1;
const RUNNING = 2;

export class WsHub {
  readonly #hs: Homeserver;
  readonly #opts: WsTunables;
  readonly #wss: WebSocketServer;
  readonly #conns = new Set<Conn>();
  readonly #queue: Conn[] = [];
  #running = 0;
  #lastPing = Date.now();
  readonly #sweep: NodeJS.Timeout;
  readonly #stop = new AbortController();
  /** Authenticated connections by user, so a room's new events wake only its members' connections. */
  readonly #byUser = new Map<string, Set<Conn>>();
  readonly #filters = new Map<string, Filter>();
  #typing: number;
  readonly #changes: StreamChanges;

  constructor(hs: Homeserver, opts: Partial<WsTunables> = {}) {
    this.#hs = hs;
    this.#opts = { ...DEFAULT_TUNABLES, ...opts };
    // No compression: per-connection zlib contexts cost far more memory than the frames save on a LAN.
    this.#wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: this.#opts.maxFrameBytes,
    });
    this.#typing = hs.typing.serial;
    this.#changes = new StreamChanges(hs, this.#stop.signal);
    this.#sweep = setInterval(() => this.#tick(), 1000);
    this.#sweep.unref();
    void this.#watch();
  }

  get connections(): number {
    return this.#conns.size;
  }

  /** Frames built by the fast path (shared slices) rather than a full computeSync, for tests and benches. */
  fastFrames = 0;

  /** Serve WS_PATH on `server`'s upgrade requests; other paths are left to other listeners (or refused). */
  attach(server: Server): void {
    server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const url = new URL(req.url ?? "/", "http://x");
      if (url.pathname !== WS_PATH) {
        if (server.listenerCount("upgrade") === 1) socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n");
        return;
      }
      // A closure here would keep this scope (the request, its headers, the URL) alive as long as the socket.
      socket.on("error", destroySocket);
      this.#wss.handleUpgrade(req, socket, head, (ws) => this.#open(ws, req, url.searchParams));
    });
  }

  /** Close every connection (1001) and stop the hub. */
  close(): void {
    this.#stop.abort();
    clearInterval(this.#sweep);
    for (const c of this.#conns) this.#close(c, CloseCode.goingAway, "server shutting down", true);
    this.#queue.length = 0;
  }

  #open(ws: WebSocket, req: IncomingMessage, query: URLSearchParams): void {
    const c: Conn = {
      ws,
      ip: req.socket.remoteAddress ?? "?",
      requester: null,
      filter: {},
      filterKey: "",
      since: null,
      ackMode: query.get("ack") === "true",
      unacked: null,
      query,
      openedAt: Date.now(),
      blockedAt: 0,
      state: IDLE,
      dirty: false,
      alive: true,
      closed: false,
    };
    this.#conns.add(c);
    this.#hs.metrics.activeWebsockets++;
    ws.on("error", () => {}); // ws closes the socket itself (1002/1007/1009); the error needs no handling here
    ws.on("close", () => this.#forget(c));
    ws.on("pong", () => {
      c.alive = true;
    });
    ws.on("message", (data, isBinary) => this.#onMessage(c, data as Buffer, isBinary));
    const header = req.headers.authorization;
    if (header !== undefined) {
      const m = /^Bearer\s+(\S+)$/i.exec(header);
      if (!m) {
        this.#close(c, CloseCode.unauthorized, "M_MISSING_TOKEN: malformed Authorization header");
        return;
      }
      void this.#authenticate(c, m[1]);
    } else {
      const t = query.get("access_token");
      if (t) void this.#authenticate(c, t);
    }
  }

  #onMessage(c: Conn, data: Buffer, isBinary: boolean): void {
    if (c.closed) return;
    if (isBinary) {
      this.#close(c, CloseCode.unsupportedData, "binary frames are not accepted");
      return;
    }
    const f = parseClientFrame(data.toString("utf8"));
    if (!f) {
      this.#close(c, CloseCode.badInput, "M_BAD_JSON: expected a JSON frame of type auth, ack or ping");
      return;
    }
    if (f.type === "ping") {
      c.ws.send('{"type":"pong"}');
    } else if (f.type === "auth") {
      if (c.requester || c.query === null) {
        this.#close(c, CloseCode.badInput, "M_BAD_JSON: already authenticated");
        return;
      }
      c.query.delete("access_token");
      void this.#authenticate(c, f.token);
    } else if (c.unacked !== null && f.since === c.unacked) {
      c.unacked = null;
      this.#schedule(c);
    }
  }

  async #authenticate(c: Conn, token: string): Promise<void> {
    const q = c.query;
    if (!q) return;
    c.query = null; // one authentication attempt per connection
    try {
      const requester = await this.#hs.auth.authenticate(token, c.ip);
      if (c.closed) return;
      if (!requester) {
        this.#close(c, CloseCode.unauthorized, "M_UNKNOWN_TOKEN: unknown or expired access token");
        return;
      }
      const since = q.get("since");
      c.since = since ? parseSyncToken(since) : null;
      this.#setFilter(c, await resolveSyncFilter(this.#hs, requester.userId, q.get("filter")));
      if (q.get("set_presence") !== "offline") await touchPresence(this.#hs, requester.userId, null);
      if (c.closed) return;
      c.requester = requester;
      const mine = this.#byUser.get(requester.userId);
      if (mine) mine.add(c);
      else this.#byUser.set(requester.userId, new Set([c]));
      c.ws.send(
        JSON.stringify({
          type: "ready",
          user_id: requester.userId,
          device_id: requester.deviceId,
          since: since ?? null,
        }),
      );
      this.#schedule(c);
    } catch (e) {
      const err = toAmiError(e);
      if (err.code === "M_UNKNOWN") this.#hs.log.error("websocket setup failed", { err: String(e) });
      this.#close(c, err.status < 500 ? CloseCode.badInput : CloseCode.internalError, `${err.code}: ${err.message}`);
    }
  }

  /** One subscription to the notifier for every connection; registering before waking means no notify is missed. */
  async #watch(): Promise<void> {
    while (!this.#stop.signal.aborted) {
      const next = this.#hs.notifier.wait(60_000, this.#stop.signal);
      const stream = this.#hs.stream.current;
      const typing = this.#hs.typing.serial;
      const touched = this.#changes.classify(stream);
      if (touched === null || typing !== this.#typing) {
        // Anything but plain room events (or a typing change): every connection behind computes in full.
        this.#typing = typing;
        for (const c of this.#conns) {
          if (!c.requester || (c.since && c.since.stream === stream && c.since.typing === typing)) continue;
          this.#schedule(c);
        }
      } else if (touched.size > 0) {
        // Only the members of rooms with new events have anything to receive.
        try {
          for (const roomId of touched) {
            const { joined } = await this.#changes.roomInfo(stream, roomId);
            for (const userId of joined)
              for (const c of this.#byUser.get(userId) ?? [])
                if (!c.since || c.since.stream < stream) this.#schedule(c);
          }
        } catch (e) {
          this.#hs.log.error("websocket wake-up failed", { err: String(e) });
          for (const c of this.#conns) this.#schedule(c);
        }
      }
      await next;
      // Let the stream hooks' promise reactions (their position marks) run first; this also coalesces bursts.
      await new Promise((r) => setImmediate(r));
    }
  }

  #schedule(c: Conn): void {
    if (c.closed || !c.requester) return;
    if (c.state !== IDLE) {
      c.dirty = true;
      return;
    }
    c.state = QUEUED;
    this.#queue.push(c);
    this.#drain();
  }

  #drain(): void {
    while (this.#running < this.#opts.concurrency && this.#queue.length > 0) {
      const c = this.#queue.shift()!;
      this.#running++;
      c.state = RUNNING;
      void this.#pass(c).finally(() => {
        this.#running--;
        c.state = IDLE;
        if (c.dirty) {
          c.dirty = false;
          this.#schedule(c);
        }
        this.#drain();
      });
    }
  }

  /** Compute and send one frame if the connection can take it and anything changed since its last frame. */
  async #pass(c: Conn): Promise<void> {
    if (c.closed || !c.requester || c.unacked !== null) return;
    if (c.ws.bufferedAmount > this.#opts.maxBufferedBytes) {
      if (!c.blockedAt) {
        c.blockedAt = Date.now();
        this.#hs.metrics.blockedWebsockets++;
      }
      return; // resumed by the send callback once the buffer drained
    }
    this.#unblock(c);
    const hs = this.#hs;
    const upto = hs.stream.current;
    const typingSerial = hs.typing.serial;
    const prev = c.since;
    if (prev && prev.stream === upto && prev.typing === typingSerial) return;
    // A token from beyond our stream (e.g. a wiped database) cannot be diffed against: start from scratch, as /sync.
    const base = prev && prev.stream <= upto ? prev : null;
    let out: { body: Record<string, any>; empty: boolean } | null = null;
    try {
      if (base && this.#changes.fastFrom(base.stream, upto) && base.typing === typingSerial) {
        const slices = await this.#changes.slices(c.requester.userId, base.stream, upto, c.filter, c.filterKey);
        if (slices)
          out = await fastSync(hs, c.requester, { since: base, filter: c.filter, upto, typingSerial }, slices);
      }
      if (out) this.fastFrames++;
      out ??= await computeSync(hs, c.requester, {
        since: base,
        filter: c.filter,
        fullState: false,
        upto,
        typingSerial,
      });
    } catch (e) {
      const err = toAmiError(e);
      hs.log.error("websocket sync failed", { user: c.requester.userId, err: String((e as Error)?.stack ?? e) });
      this.#close(c, CloseCode.internalError, `${err.code}: ${err.message}`);
      return;
    }
    if (c.closed) return;
    c.since = { stream: upto, typing: typingSerial };
    if (out.empty && base) return; // nothing new: advance silently (the client's older token stays valid)
    const next = out.body.next_batch as string;
    if (c.ackMode && (out.body.to_device?.events?.length ?? 0) > 0) c.unacked = next;
    hs.metrics.websocketFrames++;
    c.ws.send(syncFrame(next, out.body), () => {
      // The send callback is the drain signal: no per-connection 'drain' listener or timer.
      if (c.blockedAt && c.ws.bufferedAmount <= this.#opts.maxBufferedBytes) this.#schedule(c);
    });
  }

  #tick(): void {
    const now = Date.now();
    const ping = now - this.#lastPing >= this.#opts.pingIntervalMs;
    if (ping) this.#lastPing = now;
    for (const c of this.#conns) {
      if (c.closed) continue;
      if (!c.requester && c.query !== null && now - c.openedAt > this.#opts.authTimeoutMs) {
        this.#close(c, CloseCode.unauthorized, "M_MISSING_TOKEN: no access token within the auth timeout");
        continue;
      }
      if (c.blockedAt && now - c.blockedAt > this.#opts.slowConsumerMs) {
        this.#hs.metrics.websocketResyncs++;
        c.ws.send('{"type":"resync"}');
        this.#close(c, CloseCode.tooSlow, "consumer too slow: reconnect with your last next_batch");
        continue;
      }
      if (ping) {
        if (!c.alive) {
          this.#close(c, CloseCode.goingAway, "ping timeout", true);
          continue;
        }
        c.alive = false;
        c.ws.ping();
        if (c.requester) void this.#recheck(c);
      }
    }
  }

  /** A token revoked (logout, device deletion, deactivation) while connected ends the stream at the next ping. */
  async #recheck(c: Conn): Promise<void> {
    const { store } = this.#hs;
    try {
      const tok = await store.getToken(c.requester!.tokenHash);
      const user = tok ? await store.getUser(tok.userId) : null;
      if (!user || user.deactivated) this.#close(c, CloseCode.unauthorized, "M_UNKNOWN_TOKEN: access token revoked");
    } catch {
      // A store hiccup is not a revocation: the next ping asks again.
    }
  }

  #close(c: Conn, code: number, reason: string, hard = false): void {
    if (c.closed) return;
    c.closed = true;
    if (hard) c.ws.terminate();
    else c.ws.close(code, closeReason(reason));
    // A peer that never reads would hold the closing handshake open: the sweep's slow check no longer sees it.
    this.#forget(c);
  }

  #unblock(c: Conn): void {
    if (!c.blockedAt) return;
    c.blockedAt = 0;
    this.#hs.metrics.blockedWebsockets--;
  }

  #forget(c: Conn): void {
    c.closed = true;
    this.#unblock(c);
    if (c.requester) {
      const mine = this.#byUser.get(c.requester.userId);
      mine?.delete(c);
      if (mine?.size === 0) this.#byUser.delete(c.requester.userId);
    }
    if (this.#conns.delete(c)) this.#hs.metrics.activeWebsockets--;
  }

  #setFilter(c: Conn, filter: Filter): void {
    const key = JSON.stringify(filter);
    let f = this.#filters.get(key);
    if (!f) {
      if (this.#filters.size > 1000) this.#filters.clear();
      f = filter;
      this.#filters.set(key, f);
    }
    c.filter = f;
    c.filterKey = key;
  }
}
