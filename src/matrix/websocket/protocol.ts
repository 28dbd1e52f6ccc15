/**
 * The WebSocket event stream's wire protocol (docs/matrix-websocket.md): path, close codes, frames, and
 * the parsing of what a client may send. Kept apart from the hub so clients (ops, tests) can share it.
 */
import { isJsonObject } from "../events/types.ts";
import type { SyncResponse } from "../service/sync/types.ts";

/** Not under /_matrix: this is ami-streams' own extension, not a Matrix spec endpoint. */
export const WS_PATH = "/_ami/ws/v1/sync";

export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  /** Binary frames: only JSON text is spoken here. */
  unsupportedData: 1003,
  /** Set by `ws` itself when a frame exceeds maxPayload. */
  tooBig: 1009,
  internalError: 1011,
  /** Malformed frame, unknown type, bad `since` or `filter`. */
  badInput: 4400,
  /** Missing, unknown or revoked access token; or no auth message in time. */
  unauthorized: 4401,
  /** The consumer stayed too far behind: reconnect with the last `next_batch` received. */
  tooSlow: 4408,
} as const;

export interface WsTunables {
  /** Stop computing for a connection while more than this many bytes wait to be written to it. */
  maxBufferedBytes: number;
  /** A connection over the bound for this long is told to resync and closed (4408). */
  slowConsumerMs: number;
  /** Protocol-level ping interval; a connection that missed the previous pong is dropped. */
  pingIntervalMs: number;
  /** Time allowed for a `{"type":"auth"}` frame when the upgrade carried no token. */
  authTimeoutMs: number;
  /** Largest client frame accepted (client frames are tiny: auth, ack, ping). */
  maxFrameBytes: number;
  /** How many connections compute their next frame at once (the store is shared; more only queues there). */
  concurrency: number;
}

export const DEFAULT_TUNABLES: WsTunables = {
  maxBufferedBytes: 1024 * 1024,
  slowConsumerMs: 10_000,
  pingIntervalMs: 30_000,
  authTimeoutMs: 5_000,
  maxFrameBytes: 64 * 1024,
  concurrency: 16,
};

export type ClientFrame = { type: "auth"; token: string } | { type: "ack"; since: string } | { type: "ping" };

/** Parse one text frame from a client; null when it is not a frame we understand. */
export function parseClientFrame(text: string): ClientFrame | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isJsonObject(v)) return null;
  if (v.type === "auth" && typeof v.token === "string" && v.token.length > 0) return { type: "auth", token: v.token };
  if (v.type === "ack" && typeof v.since === "string") return { type: "ack", since: v.since };
  if (v.type === "ping") return { type: "ping" };
  return null;
}

/** A close reason must fit in 123 bytes of UTF-8. */
export function closeReason(s: string): string {
  const b = Buffer.from(s, "utf8");
  return b.length <= 123
    ? s
    : b
        .subarray(0, 120)
        .toString("utf8")
        .replace(/\uFFFD$/, "") + "...";
}

/** The sync frame, serialised without re-encoding the body twice. */
export function syncFrame(nextBatch: string, body: SyncResponse): string {
  return `{"type":"sync","next_batch":${JSON.stringify(nextBatch)},"data":${JSON.stringify(body)}}`;
}
