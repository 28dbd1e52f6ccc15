/**
 * One peer wire connection over TCP: the handshake (with a deadline; anything that is not a BitTorrent
 * handshake ends the socket), then framed messages in and out. Garbage, an oversized frame or a silent peer
 * closes this connection only; the torrent sees `onClose` with the reason.
 */
import { connect, type Socket } from "node:net";
import { AmiError, toAmiError } from "../../core/errors.ts";
import type { PeerAddress } from "../discovery.ts";
import {
  decodeHandshake,
  encodeHandshake,
  encodeMessage,
  Framer,
  HANDSHAKE_LENGTH,
  type Handshake,
  type Message,
} from "./messages.ts";

export const HANDSHAKE_TIMEOUT_MS = 10_000;
/** BEP 3 peers send a keep-alive every two minutes; a peer silent for longer is gone. */
export const IDLE_TIMEOUT_MS = 180_000;

export class PeerWire {
  readonly socket: Socket;
  readonly remote: PeerAddress;
  readonly theirs: Handshake;
  /** Payload bytes (piece blocks) each way, for rates and tit-for-tat. */
  uploaded = 0;
  downloaded = 0;
  closed = false;
  private onMessage: (m: Message) => void = () => {};
  private onClose: (reason: string) => void = () => {};
  private readonly framer = new Framer();
  /** Bytes after the handshake, and any arriving before `start`, held until there is a handler. */
  private held: Buffer[] | null;

  private constructor(socket: Socket, theirs: Handshake, rest: Buffer) {
    this.socket = socket;
    this.theirs = theirs;
    this.remote = { host: socket.remoteAddress ?? "?", port: socket.remotePort ?? 0 };
    socket.setTimeout(IDLE_TIMEOUT_MS, () => this.close("idle"));
    this.held = rest.length ? [rest] : [];
    socket.on("data", (d: Buffer) => (this.held ? this.held.push(d) : this.feed(d)));
    socket.on("close", () => this.close("closed"));
    socket.on("error", (e) => this.close(e.message));
  }

  /** Attach the handlers and deliver what arrived so far. */
  start(onMessage: (m: Message) => void, onClose: (reason: string) => void): void {
    this.onMessage = onMessage;
    this.onClose = onClose;
    const held = this.held ?? [];
    this.held = null;
    if (this.closed) onClose("closed");
    for (const d of held) this.feed(d);
  }

  private feed(d: Buffer): void {
    if (this.closed) return;
    let msgs: Message[];
    try {
      msgs = this.framer.push(d);
    } catch (e) {
      this.close(toAmiError(e).message);
      return;
    }
    for (const m of msgs) {
      if (this.closed) return;
      if (m.type === "piece") this.downloaded += m.block.length;
      try {
        this.onMessage(m);
      } catch (e) {
        // A message that breaks the protocol's rules (a handler threw) costs the peer its connection, not us.
        this.close(toAmiError(e).message);
        return;
      }
    }
  }

  send(m: Message): void {
    if (this.closed) return;
    if (m.type === "piece") this.uploaded += m.block.length;
    this.socket.write(encodeMessage(m));
  }

  /** Bytes queued in the socket not yet handed to the kernel (backpressure for serving). */
  get backlog(): number {
    return this.socket.writableLength;
  }

  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    this.onClose(reason);
  }

  /** Dial a peer, send our handshake, and wait for theirs (it must name the same infohash). */
  static connect(addr: PeerAddress, ours: Handshake, timeoutMs = HANDSHAKE_TIMEOUT_MS): Promise<PeerWire> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: addr.host, port: addr.port });
      socket.setNoDelay(true);
      socket.once("connect", () => socket.write(encodeHandshake(ours)));
      readHandshake(socket, timeoutMs).then(({ hs, rest }) => {
        if (!hs.infohash.equals(ours.infohash)) {
          socket.destroy();
          reject(new AmiError("AMI_INVALID_INPUT", "peer answered for another infohash"));
          return;
        }
        resolve(new PeerWire(socket, hs, rest));
      }, reject);
    });
  }

  /** An incoming socket: read the handshake, ask `lookup` for ours (undefined: we do not serve it), answer. */
  static async accept(
    socket: Socket,
    lookup: (infohash: Buffer) => Handshake | undefined,
    timeoutMs = HANDSHAKE_TIMEOUT_MS,
  ): Promise<PeerWire> {
    socket.setNoDelay(true);
    const { hs, rest } = await readHandshake(socket, timeoutMs);
    const ours = lookup(hs.infohash);
    if (!ours) {
      socket.destroy();
      throw new AmiError("AMI_INVALID_INPUT", "peer asked for a torrent we do not serve");
    }
    socket.write(encodeHandshake(ours));
    return new PeerWire(socket, hs, rest);
  }
}

function readHandshake(socket: Socket, timeoutMs: number): Promise<{ hs: Handshake; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const done = (err?: Error, v?: { hs: Handshake; rest: Buffer }): void => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("error", onErr);
      socket.off("close", onClose);
      if (err) {
        socket.destroy();
        reject(err);
      } else if (v) resolve(v);
    };
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      // Reject early: the first 20 bytes must be the protocol string.
      if (buf[0] !== 19) {
        done(new AmiError("AMI_INVALID_INPUT", "peer wire: not a BitTorrent handshake"));
        return;
      }
      if (buf.length < HANDSHAKE_LENGTH) return;
      try {
        const hs = decodeHandshake(buf);
        // Copy: the handshake fields are views into `buf`.
        done(undefined, {
          hs: {
            reserved: Buffer.from(hs.reserved),
            infohash: Buffer.from(hs.infohash),
            peerId: Buffer.from(hs.peerId),
          },
          rest: buf.subarray(HANDSHAKE_LENGTH),
        });
      } catch (e) {
        done(e as Error);
      }
    };
    const onErr = (e: Error): void => done(e);
    const onClose = (): void => done(new AmiError("AMI_UNAVAILABLE", "peer closed during the handshake"));
    const timer = setTimeout(
      () => done(new AmiError("AMI_TIMEOUT", `peer wire: no handshake within ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.on("data", onData);
    socket.on("error", onErr);
    socket.on("close", onClose);
  });
}
