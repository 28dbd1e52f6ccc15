/**
 * The one way to open an HTTP listener. Every listener gets: a request target that was parsed without
 * throwing (malformed → 400 JSON), header/request/idle timeouts (slow or half-open clients are cut off),
 * connection caps in total and per client address, an error boundary per request and per upgrade (a throw
 * or rejection ends that request, is logged without secrets, and never reaches the process), and 400/408/431
 * JSON answers to requests Node's parser refuses. Opt-in: TLS, and HTTP/2 on it (h2.ts); a raw-socket fast path (fast.ts) for answers held as
 * complete bytes, under the same caps and timeouts, that hands anything else to node:http.
 */
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Duplex } from "node:stream";
import { AmiError, toAmiError } from "../errors.ts";
import type { Logger } from "../logger.ts";
import { createServer, maxHeaderSize, requireHttps } from "../node-http.ts";
import { type FastResponder, fastConnection } from "./fast.ts";
import { createH2Server } from "./h2.ts";
import { sendError } from "./reply.ts";
import { loggablePath, parseTarget, type Target } from "./target.ts";

export interface ListenerLimits {
  /** All headers must arrive within this (slowloris). */
  headersTimeoutMs: number;
  /** The whole request, body included, must arrive within this. Responses (long-polls) are not bound by it. */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** A socket with no traffic either way for this long is closed; routes that hold a response call `holdOpen`. */
  idleTimeoutMs: number;
  /** Open connections in total; more are answered 503 and closed. */
  maxConnections: number;
  /** Open connections from one client address. */
  maxConnectionsPerAddress: number;
  /** HTTP/2: streams open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS). */
  maxConcurrentStreams: number;
}

export const DEFAULT_LIMITS: ListenerLimits = {
  headersTimeoutMs: 15_000,
  requestTimeoutMs: 300_000,
  keepAliveTimeoutMs: 65_000,
  idleTimeoutMs: 120_000,
  maxConnections: 10_000,
  maxConnectionsPerAddress: 1_000,
  maxConcurrentStreams: 100,
};

export type RequestHandler = (req: IncomingMessage, res: ServerResponse, target: Target) => unknown;
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer, target: Target) => unknown;

export interface ListenerOptions {
  /** For log lines and errors ("homeserver", "media http", "control API"...). */
  name: string;
  log: Logger;
  handler: RequestHandler;
  /** WebSocket and other upgrades; none: upgrade requests get 404. */
  upgrade?: UpgradeHandler;
  limits?: Partial<ListenerLimits>;
  /**
   * The fast path (fast.ts): a synchronous responder for answers held as complete bytes; simple GET/HEAD
   * requests it answers never reach node:http. Anything it does not answer takes the usual path.
   */
  fast?: FastResponder;
  /**
   * Share the port with other processes listening with it too (SO_REUSEPORT: the kernel spreads connections over
   * them). The homeserver's workers use it; a port held without it still fails with EADDRINUSE.
   */
  reusePort?: boolean;
  /**
   * TLS termination (HTTPS, HTTP/1.1): PEM certificate chain and key. The caps and timeouts apply the same; the
   * fast path (plain TCP only) is off.
   */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /**
   * With `tls`: HTTP/2 as well (h2.ts; ALPN "h2", "http/1.1" fallback on the same port). Handlers get the compat
   * API's req/res (Host filled from :authority); no upgrades on h2 streams. Rapid-reset, SETTINGS-flood and
   * invalid-frame limits per session, `maxConcurrentStreams` per connection.
   */
  http2?: boolean;
}

export interface ListenerStats {
  open: number;
  refused: number;
  handlerErrors: number;
  badRequests: number;
  /** Requests answered on the fast path. */
  fast: number;
  /** Connections handed from the fast path to node:http. */
  handedOff: number;
}

export interface HttpListener {
  server: Server;
  stats: ListenerStats;
  limits: ListenerLimits;
  /** Listens; EADDRINUSE becomes a clear AMI_UNAVAILABLE. Resolves to the bound port. */
  listen(port: number, host: string): Promise<number>;
  close(): Promise<void>;
}

const RAW_503 = "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: application/json\r\n";

function rawJson(status: string, errcode: string, error: string): string {
  const body = JSON.stringify({ errcode, error });
  return `HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

function destroySocket(this: Duplex): void {
  this.destroy();
}

export function createHttpListener(o: ListenerOptions): HttpListener {
  const limits = { ...DEFAULT_LIMITS, ...o.limits };
  const stats: ListenerStats = { open: 0, refused: 0, handlerErrors: 0, badRequests: 0, fast: 0, handedOff: 0 };
  const perAddress = new Map<string, number>();

  // Errors a handler throws on purpose (AmiErrors under 500: not found, forbidden...) are answers, not failures.
  const failed = (req: IncomingMessage, res: ServerResponse | null, e: unknown) => {
    const err = res ? sendError(res, e) : toAmiError(e);
    if (err.status < 500) return;
    stats.handlerErrors++;
    o.log.error(`${o.name}: request failed`, {
      method: req.method,
      path: loggablePath(req.url),
      error: String((e as Error)?.stack ?? e).slice(0, 2000),
    });
  };

  const serverOptions = {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // The 'timeout' checks run at this interval; keep it below the smallest timeout.
    connectionsCheckingInterval: Math.min(1_000, limits.headersTimeoutMs),
  };
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const target = parseTarget(req.url);
    if (target === null) {
      stats.badRequests++;
      sendError(res, new AmiError("AMI_INVALID_INPUT", "Malformed request target", {}, 400));
      return;
    }
    try {
      const p = o.handler(req, res, target);
      if (p instanceof Promise) p.catch((e) => failed(req, res, e));
    } catch (e) {
      failed(req, res, e);
    }
  };
  const server: Server =
    o.tls && o.http2
      ? createH2Server(
          {
            cert: o.tls.cert,
            key: o.tls.key,
            maxConcurrentStreams: limits.maxConcurrentStreams,
            handshakeTimeoutMs: limits.headersTimeoutMs,
            headersTimeoutMs: limits.headersTimeoutMs,
            requestTimeoutMs: limits.requestTimeoutMs,
            keepAliveTimeoutMs: limits.keepAliveTimeoutMs,
            connectionsCheckingIntervalMs: serverOptions.connectionsCheckingInterval,
          },
          onRequest,
        )
      : o.tls
        ? (requireHttps().createServer(
            // A client that never finishes the handshake is cut off like one that never sends its headers.
            { ...serverOptions, cert: o.tls.cert, key: o.tls.key, handshakeTimeout: limits.headersTimeoutMs },
            onRequest,
          ) as unknown as Server)
        : createServer(serverOptions, onRequest);
  // A failed TLS handshake is a bad request on that socket only.
  if (o.tls)
    server.on("tlsClientError", (_e: Error, socket: Duplex) => {
      stats.badRequests++;
      socket.destroy();
    });
  // An h2 session that fails (protocol error, flood, too many resets or invalid frames) ends that connection only.
  if (o.tls && o.http2)
    server.on("sessionError", () => {
      stats.badRequests++;
    });
  server.timeout = limits.idleTimeoutMs;

  // With a fast path, node:http's own connection handler (the only one so far) runs only for the sockets the
  // fast path hands over; refused sockets reach neither.
  const fast = o.tls ? undefined : o.fast;
  const nodeConnection = server.listeners("connection")[0] as (s: Socket) => void;
  const onFast = new Set<Socket>();
  // Every accepted connection, for close(): node:http2's server has no closeAllConnections.
  const live = new Set<Socket>();
  const fastOptions = fast && {
    respond: fast,
    handOff: (s: Socket) => nodeConnection.call(server, s),
    maxHead: maxHeaderSize,
    headersTimeoutMs: limits.headersTimeoutMs,
    keepAliveTimeoutMs: limits.keepAliveTimeoutMs,
    stats,
    live: onFast,
    onError: (e: unknown) => {
      stats.handlerErrors++;
      o.log.error(`${o.name}: fast responder failed`, { error: String((e as Error)?.stack ?? e).slice(0, 2000) });
    },
  };
  if (fastOptions) server.off("connection", nodeConnection);

  server.on("connection", (socket: Socket) => {
    const addr = socket.remoteAddress ?? "?";
    const mine = (perAddress.get(addr) ?? 0) + 1;
    if (stats.open >= limits.maxConnections || mine > limits.maxConnectionsPerAddress) {
      stats.refused++;
      const body = '{"errcode":"M_LIMIT_EXCEEDED","error":"too many connections"}';
      socket.on("error", () => {});
      socket.end(`${RAW_503}Content-Length: ${body.length}\r\n\r\n${body}`);
      // A client that never reads must not hold the refused socket open.
      setTimeout(() => socket.destroy(), 1_000).unref();
      return;
    }
    stats.open++;
    perAddress.set(addr, mine);
    live.add(socket);
    socket.once("close", () => {
      live.delete(socket);
      stats.open--;
      const n = (perAddress.get(addr) ?? 1) - 1;
      if (n <= 0) perAddress.delete(addr);
      else perAddress.set(addr, n);
    });
    if (fastOptions) fastConnection(socket, fastOptions);
  });

  server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
    stats.badRequests++;
    if (!socket.writable || (err.code === "ECONNRESET" && !socket.readable)) {
      socket.destroy();
      return;
    }
    const code = err.code ?? "";
    const reply =
      code === "ERR_HTTP_REQUEST_TIMEOUT" || code === "HPE_HEADER_TIMEOUT"
        ? rawJson("408 Request Timeout", "AMI_TIMEOUT", "request not received in time")
        : code === "HPE_HEADER_OVERFLOW"
          ? rawJson("431 Request Header Fields Too Large", "M_TOO_LARGE", "request headers too large")
          : rawJson("400 Bad Request", "AMI_INVALID_INPUT", "malformed HTTP request");
    socket.end(reply);
  });

  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // Not a closure: one would keep this scope (the request, its headers) alive as long as the socket.
    socket.on("error", destroySocket);
    const target = parseTarget(req.url);
    if (target === null || !o.upgrade) {
      stats.badRequests++;
      socket.end(
        target === null
          ? rawJson("400 Bad Request", "AMI_INVALID_INPUT", "Malformed request target")
          : rawJson("404 Not Found", "M_UNRECOGNIZED", "no upgrade here"),
      );
      return;
    }
    try {
      const p = o.upgrade(req, socket, head, target);
      if (p instanceof Promise)
        p.catch((e) => {
          failed(req, null, e);
          socket.destroy();
        });
    } catch (e) {
      failed(req, null, e);
      socket.destroy();
    }
  });

  return {
    server,
    stats,
    limits,
    listen: (port, host) =>
      new Promise<number>((resolve, reject) => {
        const onError = (e: NodeJS.ErrnoException) =>
          reject(
            e.code === "EADDRINUSE" ? new AmiError("AMI_UNAVAILABLE", `${o.name} port ${host}:${port} is in use`) : e,
          );
        server.once("error", onError);
        server.listen({ port, host, reusePort: o.reusePort === true }, () => {
          server.off("error", onError);
          // A later listener error (EMFILE on accept) is logged, never thrown at the process.
          server.on("error", (e) => o.log.error(`${o.name}: listener error`, { error: String(e) }));
          resolve((server.address() as AddressInfo).port);
        });
      }),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        if (typeof server.closeAllConnections === "function") server.closeAllConnections();
        for (const s of live) s.destroy();
        for (const s of onFast) s.destroy();
      }),
  };
}

/**
 * For a route that holds its response open on purpose (long-poll /sync, event streams): the idle timeout
 * is lifted until the response ends, then put back for the next keep-alive request.
 */
export function holdOpen(req: IncomingMessage, res: ServerResponse, limits: ListenerLimits): void {
  const socket = req.socket;
  socket.setTimeout(0);
  res.once("finish", () => {
    if (!socket.destroyed) socket.setTimeout(limits.idleTimeoutMs);
  });
}
