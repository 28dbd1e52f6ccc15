/**
 * Signalling for the viewer mesh: one swarm per stream path, on the media HTTP listener's upgrade handler
 * (`GET /_ami/mesh?path=<stream path>`, WebSocket). The server links each viewer with up to `maxPeers` others
 * (the oldest first: they hold the most segments), relays SDP/ICE only between linked viewers, and adds up the
 * viewers' byte counters into the stream's offload ratio. What a viewer may cost is bounded: frame size (ws
 * maxPayload), messages per second (token bucket), viewers per swarm, links per viewer; a malformed frame, a
 * binary frame or a flood closes that socket only.
 */
import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { type RawData, type WebSocket, WebSocketServer } from "ws";
import type { Target } from "../../core/http/target.ts";
import type { Logger } from "../../core/logger.ts";
import type { MediaAuth } from "../auth/auth.ts";
import type { MeshConfig } from "../config.ts";
import { validPath } from "../hub.ts";
import type { Outputs } from "../outputs.ts";
import { MESH_PATH, MeshClose, parseClientMessage } from "./protocol.ts";

interface Viewer {
  id: string;
  ws: WebSocket;
  swarm: Swarm;
  links: Set<Viewer>;
  /** Peers this viewer reported for a bad segment: never linked to it again. */
  avoid: Set<string>;
  tokens: number;
  refilledAt: number;
  peer: number;
  http: number;
  rejected: number;
  alive: boolean;
}

interface Totals {
  peer: number;
  http: number;
  rejected: number;
}

interface Swarm {
  path: string;
  viewers: Map<string, Viewer>;
  /** Counters of viewers that have left. */
  closed: Totals;
}

export interface MeshStatus {
  viewers: number;
  /** Segment bytes viewers got from peers and over HTTP (as they report them), and peer segments refused by hash. */
  peerBytes: number;
  httpBytes: number;
  rejected: number;
  /** peerBytes / (peerBytes + httpBytes); 0 before any byte. */
  offloadRatio: number;
}

const reject = (socket: Duplex, status: string, errcode: string, error: string) => {
  const body = JSON.stringify({ errcode, error });
  socket.end(
    `HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
};

/** Peers one viewer remembers as bad; past it the oldest is forgotten (ids of viewers long gone, usually). */
const MAX_AVOID = 256;
/** Bytes queued for one viewer (beyond the kernel's buffers) before it is cut off: a few dozen SDPs. */
const MAX_BUFFERED = 1024 * 1024;

function destroySocket(this: Duplex): void {
  this.destroy();
}

export class MeshSignal {
  readonly #c: MeshConfig;
  readonly #outputs: Outputs;
  readonly #auth: MediaAuth | undefined;
  readonly #log: Logger;
  readonly #wss: WebSocketServer;
  readonly #swarms = new Map<string, Swarm>();
  readonly #sweep: NodeJS.Timeout;
  /** Sockets closed for misbehaving (malformed, binary, too big, flooding), for tests and the logs. */
  closedForAbuse = 0;

  constructor(o: { config: MeshConfig; outputs: Outputs; auth?: MediaAuth; log: Logger }) {
    this.#c = o.config;
    this.#outputs = o.outputs;
    this.#auth = o.auth;
    this.#log = o.log;
    this.#wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: o.config.maxMessageBytes,
    });
    // Pings find viewers that vanished without a close; swarms of ended streams keep their totals until then.
    this.#sweep = setInterval(() => this.#tick(), 15_000);
    this.#sweep.unref();
  }

  handles(t: Target): boolean {
    return t.pathname === MESH_PATH;
  }

  /** The media listener's upgrade handler for MESH_PATH. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, t: Target): void {
    socket.on("error", destroySocket);
    const path = t.searchParams.get("path") ?? "";
    const refusal =
      !validPath(path) || !this.#outputs.get(path)
        ? (["404 Not Found", "M_NOT_FOUND", "no such stream"] as const)
        : // Signed and closed paths are not meshed: their viewers play over HTTP with their signature.
          this.#auth && !this.#auth.readOpen(path)
          ? (["403 Forbidden", "M_FORBIDDEN", "this stream is not open to everyone"] as const)
          : (this.#swarms.get(path)?.viewers.size ?? 0) >= this.#c.maxViewersPerStream
            ? (["503 Service Unavailable", "M_LIMIT_EXCEEDED", "swarm full"] as const)
            : undefined;
    if (refusal) {
      reject(socket, refusal[0], refusal[1], refusal[2]);
      return;
    }
    const swarm = this.#swarmOf(path);
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#join(ws, swarm));
  }

  #swarmOf(path: string): Swarm {
    let s = this.#swarms.get(path);
    if (!s) {
      s = { path, viewers: new Map(), closed: { peer: 0, http: 0, rejected: 0 } };
      this.#swarms.set(path, s);
    }
    return s;
  }

  #join(ws: WebSocket, swarm: Swarm): void {
    const v: Viewer = {
      id: randomBytes(8).toString("hex"),
      ws,
      swarm,
      links: new Set(),
      avoid: new Set(),
      tokens: this.#c.messagesPerSecond * 2,
      refilledAt: Date.now(),
      peer: 0,
      http: 0,
      rejected: 0,
      alive: true,
    };
    swarm.viewers.set(v.id, v);
    ws.on("message", (data, binary) => {
      // Whatever a frame does, it costs its own socket at worst, never the media server.
      try {
        this.#message(v, data, binary);
      } catch (e) {
        this.#log.warn("mesh message failed", { path: swarm.path, error: String(e) });
        this.#abuse(v, MeshClose.badInput, "message failed");
      }
    });
    ws.on("pong", () => {
      v.alive = true;
    });
    ws.on("close", () => this.#leave(v));
    ws.on("error", (e) => {
      // ws reports a frame over maxPayload (1009) or a protocol error here, then closes: that socket only.
      this.closedForAbuse++;
      this.#log.debug("mesh socket error", { error: String(e) });
    });
    this.#send(v, { t: "welcome", id: v.id, ice: this.#c.iceServers, waitMs: this.#c.peerWaitMs });
    this.#fill(v);
  }

  /** Links `v` with viewers that have room for a link, oldest first, until it has maxPeers. */
  #fill(v: Viewer): void {
    const max = this.#c.maxPeers;
    for (const o of v.swarm.viewers.values()) {
      if (v.links.size >= max) return;
      if (o === v || v.links.has(o) || o.links.size >= max || v.avoid.has(o.id) || o.avoid.has(v.id)) continue;
      v.links.add(o);
      o.links.add(v);
      this.#send(v, { t: "peer", id: o.id, offer: true });
      this.#send(o, { t: "peer", id: v.id, offer: false });
    }
  }

  #unlink(a: Viewer, b: Viewer): void {
    if (!a.links.delete(b)) return;
    b.links.delete(a);
    this.#send(a, { t: "gone", id: b.id });
    this.#send(b, { t: "gone", id: a.id });
  }

  #leave(v: Viewer): void {
    const s = v.swarm;
    if (s.viewers.get(v.id) !== v) return;
    s.viewers.delete(v.id);
    s.closed.peer += v.peer;
    s.closed.http += v.http;
    s.closed.rejected += v.rejected;
    const left = [...v.links];
    for (const o of left) this.#unlink(v, o);
    // Those it leaves behind take new partners (the swarm's others with room).
    for (const o of left) this.#fill(o);
  }

  #message(v: Viewer, data: RawData, binary: boolean): void {
    const now = Date.now();
    const rate = this.#c.messagesPerSecond;
    v.tokens = Math.min(rate * 2, v.tokens + ((now - v.refilledAt) * rate) / 1000);
    v.refilledAt = now;
    if (v.tokens < 1) {
      this.#abuse(v, MeshClose.rateLimited, "too many messages");
      return;
    }
    v.tokens--;
    if (binary) {
      this.#abuse(v, MeshClose.unsupportedData, "binary frames are not spoken here");
      return;
    }
    const m = parseClientMessage(data.toString());
    if (typeof m === "string") {
      this.#abuse(v, MeshClose.badInput, m);
      return;
    }
    if (m.t === "signal") {
      // A peer that is not (or no longer) linked: a race with its leaving, not an offence. Dropped.
      const to = v.swarm.viewers.get(m.to);
      if (to && v.links.has(to)) this.#send(to, { t: "signal", from: v.id, data: m.data });
    } else if (m.t === "stats") {
      // Cumulative counters: they only grow (a smaller figure is ignored, not subtracted).
      v.peer = Math.max(v.peer, m.peer);
      v.http = Math.max(v.http, m.http);
      v.rejected = Math.max(v.rejected, m.rejected);
    } else {
      // Only a linked peer can have sent a segment: other ids are not remembered (a socket's memory stays bounded).
      const o = v.swarm.viewers.get(m.id);
      if (!o || !v.links.has(o)) return;
      v.avoid.add(m.id);
      if (v.avoid.size > MAX_AVOID) v.avoid.delete(v.avoid.values().next().value as string);
      this.#unlink(v, o);
      this.#fill(v);
      this.#fill(o);
    }
  }

  #abuse(v: Viewer, code: number, reason: string): void {
    this.closedForAbuse++;
    this.#log.debug("mesh socket closed", { path: v.swarm.path, code, reason });
    v.ws.close(code, reason.slice(0, 120));
    // A peer that ignores the close handshake is cut off.
    setTimeout(() => v.ws.terminate(), 2000).unref();
  }

  #send(v: Viewer, m: unknown): void {
    if (v.ws.readyState !== v.ws.OPEN) return;
    v.ws.send(JSON.stringify(m));
    // A viewer that stops reading (while answering pings slowly enough to stay) would have us queue everything its
    // peers send it, without bound: past MAX_BUFFERED it is cut off (its 'close' then unlinks it).
    if (v.ws.bufferedAmount > MAX_BUFFERED) {
      this.closedForAbuse++;
      this.#log.debug("mesh socket closed: not reading", { path: v.swarm.path, buffered: v.ws.bufferedAmount });
      v.ws.terminate();
    }
  }

  #tick(): void {
    for (const [path, s] of this.#swarms) {
      for (const v of s.viewers.values()) {
        if (!v.alive) {
          v.ws.terminate();
          continue;
        }
        v.alive = false;
        v.ws.ping();
      }
      if (s.viewers.size === 0 && !this.#outputs.get(path)) this.#swarms.delete(path);
    }
  }

  /** How many peers a viewer has reported as bad (-1: no such viewer); for tests. */
  avoided(id: string): number {
    for (const s of this.#swarms.values()) {
      const v = s.viewers.get(id);
      if (v) return v.avoid.size;
    }
    return -1;
  }

  /** The swarm's figures (null: nobody ever joined it, or it was dropped with its stream). */
  status(path: string): MeshStatus | null {
    const s = this.#swarms.get(path);
    if (!s) return null;
    const t = { ...s.closed };
    for (const v of s.viewers.values()) {
      t.peer += v.peer;
      t.http += v.http;
      t.rejected += v.rejected;
    }
    const all = t.peer + t.http;
    return {
      viewers: s.viewers.size,
      peerBytes: t.peer,
      httpBytes: t.http,
      rejected: t.rejected,
      offloadRatio: all > 0 ? Math.round((t.peer / all) * 1000) / 1000 : 0,
    };
  }

  close(): void {
    clearInterval(this.#sweep);
    for (const s of this.#swarms.values())
      for (const v of s.viewers.values()) v.ws.close(MeshClose.goingAway, "server shutting down");
    this.#swarms.clear();
  }
}
