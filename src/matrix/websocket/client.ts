/**
 * A Node client of the WebSocket event stream (docs/matrix-websocket.md), on the `ws` package: connects,
 * authenticates, hands every sync frame to `onSync` in order and remembers the last `next_batch` so a
 * reconnect resumes where the stream stopped. Used by `ami-streams matrix watch`, the tests and the benches.
 */
import WebSocket from "ws";
import type { JsonObject, SyncEvent } from "../events/types.ts";
import type { SyncResponse } from "../service/sync/types.ts";
import { CloseCode, WS_PATH } from "./protocol.ts";

export interface StreamOptions {
  /** Access token: sent as `Authorization: Bearer` unless `auth` says otherwise. */
  token: string;
  /** How the token travels: header (default), query (`?access_token=`) or a first `auth` frame. */
  auth?: "header" | "query" | "message";
  since?: string | null;
  /** A filter ID or inline filter JSON, as /sync's `filter`. */
  filter?: string;
  /** Ack every frame (the server then keeps to-device messages until they are acknowledged). */
  ack?: boolean;
  onSync(nextBatch: string, data: SyncResponse): void;
  /** Called with `{"type":"resync"}` and other non-sync notices. */
  onNotice?(frame: JsonObject): void;
}

type ServerFrame =
  | { type: "sync"; next_batch: string; data: SyncResponse }
  | { type: "ready"; user_id: string; device_id: string }
  | { type: "resync" | "pong"; [key: string]: unknown };

export interface Closed {
  code: number;
  reason: string;
}

export class SyncStream {
  readonly ws: WebSocket;
  /** The last next_batch received: resume from here. */
  since: string | null;
  readonly ready: Promise<{ user_id: string; device_id: string }>;
  readonly closed: Promise<Closed>;

  constructor(baseUrl: string, o: StreamOptions) {
    this.since = o.since ?? null;
    const url = new URL(WS_PATH, baseUrl.replace(/^http/, "ws"));
    if (o.since) url.searchParams.set("since", o.since);
    if (o.filter) url.searchParams.set("filter", o.filter);
    if (o.ack) url.searchParams.set("ack", "true");
    const auth = o.auth ?? "header";
    if (auth === "query") url.searchParams.set("access_token", o.token);
    this.ws = new WebSocket(url, {
      headers: auth === "header" ? { Authorization: `Bearer ${o.token}` } : {},
      perMessageDeflate: false,
    });
    this.closed = new Promise((resolve) => {
      this.ws.on("close", (code, reason) => resolve({ code, reason: reason.toString("utf8") }));
    });
    this.ws.on("error", () => {}); // surfaces as a close (1006)
    if (auth === "message") this.ws.on("open", () => this.ws.send(JSON.stringify({ type: "auth", token: o.token })));
    this.ready = new Promise((resolve, reject) => {
      this.closed.then((c) => reject(new Error(`stream closed before ready: ${c.code} ${c.reason}`)));
      this.ws.on("message", (raw) => {
        const text = raw.toString();
        // The server's frames (protocol.ts): trusted to have their documented shape.
        const f = JSON.parse(text) as ServerFrame;
        if (f.type === "sync") {
          this.since = f.next_batch;
          if (o.ack) this.ws.send(JSON.stringify({ type: "ack", since: f.next_batch }));
          o.onSync(f.next_batch, f.data);
        } else if (f.type === "ready") resolve({ user_id: f.user_id, device_id: f.device_id });
        else o.onNotice?.(f);
      });
    });
    this.ready.catch(() => {});
  }

  /** Close normally and wait for the close to complete. */
  async close(): Promise<Closed> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING)
      this.ws.close(CloseCode.normal);
    return this.closed;
  }

  /** Drop the TCP connection without a closing handshake (a network failure, as far as the server can tell). */
  async kill(): Promise<Closed> {
    this.ws.terminate();
    return this.closed;
  }
}

/** Timeline events of every joined room in a sync body, oldest first per room. */
export function timelineEvents(data: SyncResponse, roomId?: string): (SyncEvent & { room_id: string })[] {
  const join = data.rooms?.join ?? {};
  const out: (SyncEvent & { room_id: string })[] = [];
  for (const [id, room] of Object.entries(join)) {
    if (roomId !== undefined && id !== roomId) continue;
    for (const e of room.timeline?.events ?? []) out.push({ ...e, room_id: id });
  }
  return out;
}
