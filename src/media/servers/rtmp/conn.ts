/**
 * One RTMP connection: handshake, chunk stream, then the NetConnection/NetStream commands of a publisher
 * (connect, releaseStream, FCPublish, createStream, publish, FCUnpublish, deleteStream) or a player (play).
 * Any protocol violation closes this connection only. So does going over what a connection may cost: until it
 * is admitted (publish or play allowed) it may hold PRE_ADMIT_BYTES of partial messages and must get there within
 * the handshake timeout; after that a publisher gets room for keyframes and must keep sending (idle timeout).
 */
import type { Socket } from "node:net";
import { isAmiError } from "../../../core/errors.ts";
import type { Logger } from "../../../core/logger.ts";
import type { MediaAuth } from "../../auth/auth.ts";
import { type Hub, type MediaStream, validPath } from "../../hub.ts";
import { PathReader } from "../../path-reader.ts";
import { type Amf, type AmfObject, decodeAll } from "../../protocols/rtmp/amf0.ts";
import type { ByteBudget } from "../../protocols/rtmp/budget.ts";
import { ChunkReader, ChunkWriter, type RtmpMessage } from "../../protocols/rtmp/chunk.ts";
import { metadataMessage, streamToRtmp } from "../../protocols/rtmp/from-stream.ts";
import { HANDSHAKE_SIZE, serverHello } from "../../protocols/rtmp/handshake.ts";
import * as M from "../../protocols/rtmp/messages.ts";
import { rtmpToStream } from "../../protocols/rtmp/to-stream.ts";
import { release, Slab } from "../../protocols/slab.ts";
import { readSocket } from "./read.ts";

const OUT_CHUNK_SIZE = 4096;
const WINDOW = 2_500_000;
/** The idle timeout is checked this many times per timeout period. */
const IDLE_CHECKS = 8;
/** Partial messages a connection may hold before it is admitted: commands are a few hundred bytes. */
export const PRE_ADMIT_BYTES = 64 * 1024;

export interface ConnLimits {
  /** From accept to an admitted publish or play. */
  handshakeTimeoutMs: number;
  /** No bytes from a connection that is not playing for this long: closed. */
  idleTimeoutMs: number;
  /** Largest message and bytes of partial messages of an admitted publisher. */
  maxMessageBytes: number;
  connectionBufferBytes: number;
  /** Shared by all connections (RTMP and RTMPS). */
  shared: ByteBudget;
}

export interface ConnOptions {
  hub: Hub;
  log: Logger;
  limits: ConnLimits;
  /** "rtmp" or "rtmps": the name publishers, readers and the auth hook see. */
  protocol: "rtmp" | "rtmps";
  /** Publish permissions and stream keys; none: anyone may publish. */
  auth?: MediaAuth;
  /** A player waits this long for a publisher that left to come back (media.endGraceSeconds); none: 0. */
  endGraceMs?: number;
}

export class RtmpConn {
  readonly socket: Socket;
  readonly remote: string;
  readonly #o: ConnOptions;
  #state: "c0c1" | "c2" | "chunks" | "closed" = "c0c1";
  #pending: Buffer = Buffer.alloc(0);
  readonly #reader: ChunkReader;
  readonly #writer = new ChunkWriter();
  #app = "";
  #nextStreamId = 1;
  #publishing: MediaStream | undefined;
  #playing: PathReader | undefined;
  #bytesIn = 0;
  #lastAck = 0;
  #peerWindow = 0;
  /** Until publish or play is admitted: then cleared. */
  #setupTimer: NodeJS.Timeout | undefined;
  readonly #idleTimer: NodeJS.Timeout;
  /** `#bytesIn` at the idle timer's last look, and when it last changed. */
  #idleBytes = 0;
  #idleSince = Date.now();

  constructor(socket: Socket, o: ConnOptions) {
    this.socket = socket;
    this.#o = o;
    this.remote = `${socket.remoteAddress}:${socket.remotePort}`;
    const l = o.limits;
    this.#reader = new ChunkReader({
      maxMessage: PRE_ADMIT_BYTES,
      maxHeld: PRE_ADMIT_BYTES,
      shared: l.shared,
      onEvict: (why) => this.close(`evicted: ${why}`),
    });
    socket.setNoDelay(true);
    // A deadline, not an inactivity timer: a peer trickling a byte at a time must not stay unadmitted forever.
    this.#setupTimer = setTimeout(
      () => this.close(`not publishing or playing within ${l.handshakeTimeoutMs / 1000} s`),
      l.handshakeTimeoutMs,
    );
    // Not `socket.setTimeout`: that re-arms a timer on every read (a publisher's socket is read ~100 times a
    // second). A coarse timer checks whether bytes came in since its last look instead.
    this.#idleTimer = setInterval(() => this.#idleCheck(), Math.max(50, l.idleTimeoutMs / IDLE_CHECKS));
    this.#idleTimer.unref();
    // Reads arrive in one reused buffer (read.ts): nothing below keeps `d` past the call.
    readSocket(socket, (d) => this.#onData(d));
    socket.on("error", () => {});
    socket.on("close", () => this.#cleanup());
  }

  get role(): "publisher" | "player" | "idle" {
    return this.#publishing ? "publisher" : this.#playing ? "player" : "idle";
  }

  /** No bytes from a connection that is not playing for `idleTimeoutMs` (to within 1/IDLE_CHECKS of it): closed. */
  #idleCheck(): void {
    const now = Date.now();
    if (this.#bytesIn !== this.#idleBytes || this.#playing) {
      this.#idleBytes = this.#bytesIn;
      this.#idleSince = now;
      return;
    }
    const ms = this.#o.limits.idleTimeoutMs;
    if (now - this.#idleSince >= ms) this.close(`nothing received for ${ms / 1000} s`);
  }

  close(reason: string): void {
    if (this.#state === "closed") return;
    this.#o.log.info("rtmp connection closed", { remote: this.remote, reason });
    this.#state = "closed";
    this.socket.destroy();
    this.#cleanup();
  }

  #cleanup(): void {
    this.#state = "closed";
    clearTimeout(this.#setupTimer);
    clearInterval(this.#idleTimer);
    this.#reader.release();
    if (this.#publishing) {
      this.#o.log.info("rtmp publisher left", { path: this.#publishing.path, remote: this.remote });
      this.#publishing.end();
      this.#publishing = undefined;
    }
    this.#playing?.close();
    this.#playing = undefined;
  }

  #send(m: RtmpMessage): boolean {
    if (this.#state === "closed") return false;
    return this.socket.write(this.#writer.write(m));
  }

  /** Publish or play was allowed: no setup deadline, and a publisher gets room for keyframes. */
  #admitted(publisher: boolean): void {
    clearTimeout(this.#setupTimer);
    this.#setupTimer = undefined;
    if (publisher) {
      this.#reader.maxMessage = this.#o.limits.maxMessageBytes;
      this.#reader.maxHeld = this.#o.limits.connectionBufferBytes;
      // A publisher's messages come from 1 MiB slabs that are reused once every holder of their frames let go
      // (slab.ts; the hub's GOP cache, the CMAF packager and its muxer say when): new ArrayBuffers per second of
      // 6 Mb/s were what drove the steady-state mark-compacts.
      this.#reader.useSlab(new Slab(1024 * 1024, { recycle: true }));
    }
  }

  #onData(d: Buffer): void {
    if (this.#state === "closed") return;
    try {
      this.#bytesIn += d.length;
      if (this.#state === "chunks") {
        this.#onChunks(d);
        return;
      }
      this.#pending = Buffer.concat([this.#pending, d]);
      if (this.#state === "c0c1") {
        if (this.#pending.length < 1 + HANDSHAKE_SIZE) return;
        this.socket.write(serverHello(this.#pending));
        this.#pending = this.#pending.subarray(1 + HANDSHAKE_SIZE);
        this.#state = "c2";
      }
      if (this.#state === "c2" && this.#pending.length >= HANDSHAKE_SIZE) {
        const rest = this.#pending.subarray(HANDSHAKE_SIZE);
        this.#pending = Buffer.alloc(0);
        this.#state = "chunks";
        if (rest.length) this.#onChunks(rest);
      }
    } catch (e) {
      this.close(`protocol error: ${(e as Error).message}`);
    }
  }

  #onChunks(d: Buffer): void {
    const messages = this.#reader.push(d);
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i] as RtmpMessage;
      if (this.#state === "closed") return;
      this.#onMessage(m);
      // Dispatched: whoever keeps the bytes (GOP cache, packager) holds its own reference.
      release(m.payload);
    }
    if (this.#peerWindow > 0 && this.#bytesIn - this.#lastAck >= this.#peerWindow) {
      this.#lastAck = this.#bytesIn;
      this.#send(M.ack(this.#bytesIn));
    }
  }

  #onMessage(m: RtmpMessage): void {
    switch (m.type) {
      case M.MSG.WINDOW_ACK_SIZE:
        if (m.payload.length >= 4) this.#peerWindow = m.payload.readUInt32BE(0);
        return;
      case M.MSG.COMMAND_AMF0:
        this.#onCommand(decodeAll(m.payload), m.streamId);
        return;
      case M.MSG.COMMAND_AMF3:
        this.#onCommand(decodeAll(m.payload.subarray(1)), m.streamId);
        return;
      case M.MSG.AUDIO:
      case M.MSG.VIDEO:
      case M.MSG.DATA_AMF0:
      case M.MSG.DATA_AMF3:
        if (this.#publishing) rtmpToStream(m, this.#publishing);
        return;
      default:
        return; // acks, user control (ping responses), peer bandwidth: nothing to do
    }
  }

  #onCommand(v: Amf[], streamId: number): void {
    const [name, txid] = v;
    if (typeof name !== "string") throw new Error("command without a name");
    const tx = typeof txid === "number" ? txid : 0;
    switch (name) {
      case "connect":
        this.#connect(tx, (v[2] ?? {}) as AmfObject);
        return;
      case "createStream":
        this.#send(M.command(0, "_result", tx, null, this.#nextStreamId++));
        return;
      case "releaseStream":
      case "FCPublish":
        this.#send(M.command(0, "_result", tx, null));
        return;
      case "publish":
        this.#publish(String(v[3] ?? ""), streamId);
        return;
      case "play":
        this.#play(String(v[3] ?? ""), streamId);
        return;
      case "FCUnpublish":
      case "deleteStream":
      case "closeStream":
        if (this.#publishing) {
          this.#o.log.info("rtmp unpublish", { path: this.#publishing.path });
          this.#publishing.end();
          this.#publishing = undefined;
        }
        if (name !== "FCUnpublish") {
          this.#playing?.close();
          this.#playing = undefined;
        }
        return;
      default:
        return;
    }
  }

  #connect(tx: number, cmd: AmfObject): void {
    this.#app = String(cmd.app ?? "").replace(/^\/+|\/+$/g, "");
    this.#send(M.windowAckSize(WINDOW));
    this.#send(M.setPeerBandwidth(WINDOW));
    this.#send(M.setChunkSize(OUT_CHUNK_SIZE));
    this.#writer.chunkSize = OUT_CHUNK_SIZE;
    this.#send(
      M.command(
        0,
        "_result",
        tx,
        { fmsVer: "FMS/3,0,1,123", capabilities: 31 },
        {
          level: "status",
          code: "NetConnection.Connect.Success",
          description: "Connection succeeded.",
          objectEncoding: typeof cmd.objectEncoding === "number" ? cmd.objectEncoding : 0,
        },
      ),
    );
  }

  /** `rtmp://host/<app>/<key>` is path `<app>/<key>`; a `?query` on the key (tokens) is not part of the path. */
  #pathOf(name: string): string | undefined {
    const key = name.split("?")[0] ?? "";
    const path = [this.#app, key].filter(Boolean).join("/");
    return validPath(path) ? path : undefined;
  }

  #publish(name: string, streamId: number): void {
    const auth = this.#o.auth;
    const target = auth?.rtmpTarget(this.#app, name);
    const path = target ? (validPath(target.path) ? target.path : undefined) : this.#pathOf(name);
    if (!path || this.#publishing || this.#playing) {
      this.#send(M.onStatus(streamId, "error", "NetStream.Publish.BadName", `invalid stream path '${name}'`));
      this.socket.end();
      return;
    }
    if (!auth) {
      this.#publishTo(path, streamId);
      return;
    }
    const ip = this.socket.remoteAddress ?? "";
    auth.check({ action: "publish", path, protocol: this.#o.protocol, ip, key: target?.key }).then(
      (d) => {
        if (this.#state === "closed") return;
        if (d.ok) {
          this.#publishTo(path, streamId);
          return;
        }
        // NetStream.Publish.Unauthorized is what Wowza/nginx-rtmp send; OBS 29 does not know the code (it logs it)
        // and fails on the close that follows, as a connection error (media-obs test).
        this.#send(M.onStatus(streamId, "error", "NetStream.Publish.Unauthorized", d.reason));
        this.socket.end();
        this.#state = "closed";
      },
      (e) => this.close(`auth failed: ${(e as Error).message}`),
    );
  }

  #publishTo(path: string, streamId: number): void {
    try {
      this.#publishing = this.#o.hub.publish(path, {
        protocol: this.#o.protocol,
        remote: this.remote,
        since: Date.now(),
      });
    } catch (e) {
      const why = isAmiError(e) ? e.message : "publish refused";
      this.#o.log.warn("rtmp publish refused", { path, remote: this.remote, reason: why });
      this.#send(M.onStatus(streamId, "error", "NetStream.Publish.BadName", why));
      this.socket.end();
      this.#state = "closed";
      return;
    }
    this.#admitted(true);
    this.#o.log.info("rtmp publish", { path, remote: this.remote });
    this.#send(M.streamEvent(0, streamId));
    this.#send(M.onStatus(streamId, "status", "NetStream.Publish.Start", `${path} is now published.`));
  }

  #play(name: string, streamId: number): void {
    const auth = this.#o.auth;
    const path = this.#pathOf(name);
    if (!auth || !path) {
      this.#playFrom(name, path, streamId);
      return;
    }
    const query = new URLSearchParams(name.includes("?") ? name.slice(name.indexOf("?") + 1) : "");
    const ip = this.socket.remoteAddress ?? "";
    auth
      .check({ action: "read", path, protocol: this.#o.protocol, ip, key: query.get("key") ?? undefined, query })
      .then(
        (d) => {
          if (this.#state === "closed") return;
          if (d.ok) {
            this.#playFrom(name, path, streamId);
            return;
          }
          this.#send(M.onStatus(streamId, "error", "NetStream.Play.Failed", d.reason));
          this.socket.end();
        },
        (e) => this.close(`auth failed: ${(e as Error).message}`),
      );
  }

  #playFrom(name: string, path: string | undefined, streamId: number): void {
    const stream = path ? this.#o.hub.get(path) : undefined;
    if (!stream || this.#publishing || this.#playing) {
      this.#send(M.onStatus(streamId, "error", "NetStream.Play.StreamNotFound", `no stream at '${name}'`));
      return;
    }
    this.#admitted(false);
    this.#o.log.info("rtmp play", { path, remote: this.remote });
    this.#send(M.streamEvent(0, streamId));
    this.#send(M.onStatus(streamId, "status", "NetStream.Play.Reset", `Playing and resetting ${path}.`));
    this.#send(M.onStatus(streamId, "status", "NetStream.Play.Start", `Started playing ${path}.`));
    this.#send(metadataMessage(stream, streamId));
    // Kept across a publisher's reconnect within the grace: new sequence headers, timestamps going on.
    const graceMs = this.#o.endGraceMs ?? 0;
    const reader = new PathReader(this.#o.hub, stream, { protocol: this.#o.protocol, remote: this.remote, graceMs });
    this.#playing = reader;
    const drained = () => new Promise<void>((r) => this.socket.once("drain", r));
    streamToRtmp(reader, streamId, (m) => this.#send(m), drained)
      .then(() => {
        if (this.#state !== "closed" && this.#playing === reader) {
          this.#send(M.streamEvent(1, streamId));
          this.#send(M.onStatus(streamId, "status", "NetStream.Play.UnpublishNotify", `${path} ended.`));
          this.socket.end();
        }
      })
      .catch((e) => this.close(`play failed: ${(e as Error).message}`));
  }
}
