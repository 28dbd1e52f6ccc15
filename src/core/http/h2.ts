/**
 * HTTP/2 for a TLS listener (`ListenerOptions.tls` + `http2`): node:http2's secure server with ALPN "h2" and an
 * "http/1.1" fallback (allowHTTP1), handlers given the compat API's req/res so one handler serves both. node:http2
 * is loaded only here, only for listeners that ask (node-http.ts says why loading is kept lazy).
 *
 * Limits, beyond the kit's caps and timeouts (which the caller applies to the TCP connection as for HTTPS):
 * - streams per connection (SETTINGS_MAX_CONCURRENT_STREAMS); extra streams are refused, and a client that keeps
 *   opening them after refusals loses its session (`maxSessionRejectedStreams`);
 * - header list size (SETTINGS_MAX_HEADER_LIST_SIZE = node:http's `maxHeaderSize`, so h1 and h2 refuse the same
 *   headers) and pairs;
 * - rapid reset (CVE-2023-44487): RST_STREAM frames rate-limited per session by nghttp2 (`streamResetBurst`,
 *   `streamResetRate`; past them the session gets GOAWAY), so opening and cancelling streams cannot keep the
 *   node busy without bound;
 * - SETTINGS/PING floods and garbage frames: at most `maxSettings` entries per SETTINGS frame, 10 unanswered
 *   PINGs, a session memory budget (unacknowledged SETTINGS and queued frames count against it), and the session
 *   closed after `maxSessionInvalidFrames` invalid frames.
 */
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { SecureServerOptions } from "node:http2";
import { createRequire } from "node:module";
import { maxHeaderSize } from "../node-http.ts";

/** Invalid frames tolerated per session before it is closed (node's default: 1,000). */
export const MAX_SESSION_INVALID_FRAMES = 100;
/** Refused streams (over the concurrency limit) tolerated per session before it is closed. */
export const MAX_SESSION_REJECTED_STREAMS = 100;
/** RST_STREAM from the client: a burst of this many, then this many per second (nghttp2's token bucket). */
export const STREAM_RESET_BURST = 400;
export const STREAM_RESET_RATE = 100;

export interface H2ServerOptions {
  cert: string | Buffer;
  key: string | Buffer;
  maxConcurrentStreams: number;
  /** The TLS handshake must finish within this. */
  handshakeTimeoutMs: number;
  /** node:http timeouts for HTTP/1.1 fallback connections (the h1 parser reads them off the server). */
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  connectionsCheckingIntervalMs: number;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export function createH2Server(o: H2ServerOptions, onRequest: Handler): Server {
  const http2 = createRequire(import.meta.url)("node:http2") as typeof import("node:http2");
  const options: SecureServerOptions & {
    streamResetBurst: number;
    streamResetRate: number;
    http1Options: Record<string, number>;
  } = {
    cert: o.cert,
    key: o.key,
    allowHTTP1: true,
    ALPNProtocols: ["h2", "http/1.1"],
    handshakeTimeout: o.handshakeTimeoutMs,
    maxSessionInvalidFrames: MAX_SESSION_INVALID_FRAMES,
    maxSessionRejectedStreams: MAX_SESSION_REJECTED_STREAMS,
    streamResetBurst: STREAM_RESET_BURST,
    streamResetRate: STREAM_RESET_RATE,
    maxSettings: 32,
    maxOutstandingPings: 10,
    maxSessionMemory: 10,
    maxHeaderListPairs: 128,
    // The HTTP/1.1 fallback is node:http's connection handling: the same header, request and keep-alive timeouts as
    // the kit's plain listeners, checked as often.
    http1Options: {
      headersTimeout: o.headersTimeoutMs,
      requestTimeout: o.requestTimeoutMs,
      keepAliveTimeout: o.keepAliveTimeoutMs,
      connectionsCheckingInterval: o.connectionsCheckingIntervalMs,
    },
    settings: {
      maxConcurrentStreams: o.maxConcurrentStreams,
      maxHeaderListSize: maxHeaderSize,
      enablePush: false,
    },
  };
  const server = http2.createSecureServer(options, (req, res) => {
    // An h2 request names its host in :authority; handlers (keys, host checks) read Host, as over HTTP/1.1.
    if (req.httpVersionMajor === 2 && req.headers.host === undefined) {
      const authority = req.headers[":authority"];
      if (typeof authority === "string") req.headers.host = authority;
    }
    onRequest(req as unknown as IncomingMessage, res as unknown as ServerResponse);
  });
  return server as unknown as Server;
}
