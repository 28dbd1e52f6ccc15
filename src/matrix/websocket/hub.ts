/**
 * WebSocket event streaming (docs/matrix-websocket.md): every connection receives exactly what its /sync would
 * deliver, as `sync` frames computed by the /sync engine itself (computeSync) from the last token sent.
 *
 * Costs are kept per hub, not per connection: one notifier subscription wakes every connection (no waiter or
 * timer each), one 1 s sweep does pings, auth deadlines and slow-consumer checks, and at most `concurrency`
 * connections compute at a time through one queue, so a burst of events coalesces into one frame per
 * connection instead of one computation per event per connection (pump.ts). When only plain room events and
 * tagged writes happened (StreamChanges in changes.ts knows), only the connections that can receive them wake
 * (a room's members; a presence change's, receipt's, to-device message's... audience, affects.ts), and frames
 * of plain events are built from slices shared by every connection (service/sync/fast.ts).
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { type WebSocket, WebSocketServer } from "ws";
import { toAmiError } from "../../core/errors.ts";
import { TrustedProxies } from "../../core/http/client-address.ts";
import type { Target } from "../../core/http/target.ts";
import type { Homeserver } from "../hs.ts";
import { type Filter, resolveSyncFilter } from "../service/filters.ts";
import type { Requester } from "../service/requester.ts";
import { touchPresence } from "../service/sync/presence.ts";
import { parseSyncToken } from "../service/sync/token.ts";
import { filterAllows } from "./affects.ts";
import { type Classified, StreamChanges } from "./changes.ts";
import { CloseCode, closeReason, DEFAULT_TUNABLES, parseClientFrame, WS_PATH, type WsTunables } from "./protocol.ts";
import { type Conn, FramePump, IDLE, unblock } from "./pump.ts";

const NOT_FOUND_BODY = '{"errcode":"M_UNRECOGNIZED","error":"no upgrade here"}';
const NOT_FOUND = `HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${NOT_FOUND_BODY.length}\r\n\r\n${NOT_FOUND_BODY}`;

function destroySocket(this: Duplex): void {
  this.destroy();
}

export class WsHub {
  readonly #hs: Homeserver;
  readonly #proxies: TrustedProxies;
  readonly #opts: WsTunables;
  readonly #wss: WebSocketServer;
  readonly #conns = new Set<Conn>();
  #lastPing = Date.now();
  readonly #sweep: NodeJS.Timeout;
  readonly #stop = new AbortController();
  /** Authenticated connections by user, so a room's new events wake only its members' connections. */
  readonly #byUser = new Map<string, Set<Conn>>();
  readonly #filters = new Map<string, Filter>();
  #typing: number;
  readonly #changes: StreamChanges;
  readonly #pump: FramePump;
  readonly #unsubscribeRevoke: () => void;
  /** Bumped on every session revocation, so an authentication that raced one re-checks its token. */
  #revocations = 0;

  constructor(hs: Homeserver, opts: Partial<WsTunables> = {}) {
    this.#hs = hs;
    this.#proxies = new TrustedProxies(hs.config.trustedProxies);
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
    this.#pump = new FramePump(hs, this.#opts, this.#changes, (c, code, reason) => this.#close(c, code, reason));
    this.#sweep = setInterval(() => this.#tick(), 1000);
    this.#sweep.unref();
    this.#unsubscribeRevoke = hs.auth.onRevoke((revoked) => this.#revoked(revoked));
    void this.#watch();
  }

  get connections(): number {
    return this.#conns.size;
  }

  /** Frames built by the fast path (shared slices) rather than a full computeSync, for tests and benches. */
  get fastFrames(): number {
    return this.#pump.fastFrames;
  }

  /** Fast frames that reused another connection's serialised frame, for tests. */
  get sharedFrames(): number {
    return this.#pump.sharedFrames;
  }

  /** Connection wake-ups so far (each asks for one more pass), for tests. */
  get wakeUps(): number {
    return this.#pump.wakeUps;
  }

  /**
   * The listener's upgrade handler (core/http createHttpListener `upgrade`): serves WS_PATH, refuses other paths.
   * The target was parsed by the kit, so a malformed one never reaches here.
   */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, target: Target): void {
    if (target.pathname !== WS_PATH) {
      socket.end(NOT_FOUND);
      return;
    }
    // A closure here would keep this scope (the request, its headers, the URL) alive as long as the socket.
    socket.on("error", destroySocket);
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#open(ws, req, target.searchParams));
  }

  /** Close every connection (1001) and stop the hub. */
  close(): void {
    this.#stop.abort();
    clearInterval(this.#sweep);
    this.#unsubscribeRevoke();
    for (const c of this.#conns) this.#close(c, CloseCode.goingAway, "server shutting down", true);
    this.#pump.clear();
  }

  #open(ws: WebSocket, req: IncomingMessage, query: URLSearchParams): void {
    const c: Conn = {
      ws,
      ip: this.#proxies.clientOf(req),
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
      fullNext: false,
      toDeviceHeld: true,
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
      this.#pump.schedule(c);
    }
  }

  async #authenticate(c: Conn, token: string): Promise<void> {
    const q = c.query;
    if (!q) return;
    c.query = null; // one authentication attempt per connection
    const revocations = this.#revocations;
    try {
      let requester = await this.#hs.auth.authenticate(token, c.ip);
      if (c.closed) return;
      if (!requester || requester.locked) {
        const why = requester ? "M_USER_LOCKED: account locked" : "M_UNKNOWN_TOKEN: unknown or expired access token";
        this.#close(c, CloseCode.unauthorized, why);
        return;
      }
      const since = q.get("since");
      c.since = since ? parseSyncToken(since) : null;
      this.#setFilter(c, await resolveSyncFilter(this.#hs, requester.userId, q.get("filter")));
      if (q.get("set_presence") !== "offline") await touchPresence(this.#hs, requester.userId, null);
      if (c.closed) return;
      // A logout while we were setting up would otherwise be missed: its close found no requester here yet.
      if (revocations !== this.#revocations) requester = await this.#hs.auth.authenticate(token, c.ip);
      if (c.closed) return;
      if (!requester) {
        this.#close(c, CloseCode.unauthorized, "M_UNKNOWN_TOKEN: access token revoked");
        return;
      }
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
      this.#pump.schedule(c);
    } catch (e) {
      const err = toAmiError(e);
      if (err.code === "M_UNKNOWN") this.#hs.log.error("websocket setup failed", { err: String(e) });
      const code =
        err.code === "M_UNKNOWN_TOKEN"
          ? CloseCode.unauthorized
          : err.status < 500
            ? CloseCode.badInput
            : CloseCode.internalError;
      this.#close(c, code, `${err.code}: ${err.message}`);
    }
  }

  /** One subscription to the notifier for every connection; registering before waking means no notify is missed. */
  async #watch(): Promise<void> {
    while (!this.#stop.signal.aborted) {
      const next = this.#hs.notifier.wait(60_000, this.#stop.signal);
      const stream = this.#hs.stream.current;
      const typing = this.#hs.typing.serial;
      const changed = this.#changes.classify(stream);
      if (changed === null || typing !== this.#typing) {
        // Anything but plain room events and tagged writes (or a typing change): every connection behind computes in full.
        this.#typing = typing;
        this.#wakeAll(stream);
      } else {
        try {
          await this.#wakeAffected(changed, stream);
        } catch (e) {
          this.#hs.log.error("websocket wake-up failed", { err: String(e) });
          this.#wakeAll(stream);
        }
      }
      // No extra turn of the event loop here (it cost a delivery its place behind other I/O): the position
      // marks are set before the notify, and a burst coalesces in the pump (one pass per connection at a time).
      await next;
    }
  }

  #behind(c: Conn, stream: number): boolean {
    return c.requester !== null && (!c.since || c.since.stream < stream);
  }

  #wakeAll(stream: number): void {
    for (const c of this.#conns) {
      if (!c.requester || (c.since && c.since.stream === stream && c.since.typing === this.#typing)) continue;
      this.#pump.schedule(c);
    }
  }

  /** Wake exactly the connections that can receive something: the rooms' members, each tagged write's audience. */
  async #wakeAffected(changed: Classified, stream: number): Promise<void> {
    for (const roomId of changed.rooms) {
      const { joined } = await this.#changes.roomInfo(stream, roomId);
      for (const userId of joined)
        for (const c of this.#byUser.get(userId) ?? []) if (this.#behind(c, stream)) this.#pump.schedule(c);
    }
    for (const entry of changed.tags) {
      const { tag } = entry;
      const hs = this.#hs;
      // No connection's filter takes it (presence with presence filtered out, say): nobody to look up or wake.
      if (tag.kind !== "users" && ![...this.#conns].some((c) => c.requester && filterAllows(hs, tag, c.filter)))
        continue;
      const known = await this.#changes.resolve(entry);
      const targets =
        known && entry.audience ? [...entry.audience].flatMap((u) => [...(this.#byUser.get(u) ?? [])]) : this.#conns;
      for (const c of targets) if (this.#behind(c, stream) && filterAllows(hs, tag, c.filter)) this.#pump.schedule(c);
    }
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
      // A session issued with a refresh token ends at its access token's expiry: reconnect with the new one.
      if (c.requester?.expiresTs !== undefined && c.requester.expiresTs <= now) {
        this.#close(c, CloseCode.unauthorized, "M_UNKNOWN_TOKEN: access token expired (soft logout)");
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

  /**
   * Sessions revoked (logout, logout/all, device deletion, password change, deactivation): their streams end at
   * once with 4401, as for a bad token, instead of running on until the next ping's recheck.
   */
  #revoked(revoked: (r: Requester) => boolean): void {
    this.#revocations++;
    for (const c of this.#conns)
      if (c.requester && revoked(c.requester))
        this.#close(c, CloseCode.unauthorized, "M_UNKNOWN_TOKEN: access token revoked");
  }

  /** Safety net for revocations not seen by #revoked (another process on the same database): checked at each ping. */
  async #recheck(c: Conn): Promise<void> {
    const { store } = this.#hs;
    try {
      const tok = await store.accounts.getToken(c.requester!.tokenHash);
      const user = tok ? await store.accounts.getUser(tok.userId) : null;
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

  #forget(c: Conn): void {
    c.closed = true;
    unblock(this.#hs, c);
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
