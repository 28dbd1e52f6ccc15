/**
 * The SRT listener (ingest only). ffmpeg's libsrt does the SRT protocol but, as a listener, cannot tell us the
 * caller's Stream ID or serve several callers. So we own the public UDP port and relay each caller (by address)
 * to its own `ffmpeg -i srt://127.0.0.1:<internal>?mode=listener` process; the relay reads the Stream ID from the
 * conclusion handshake (`publish:<path>`), and the ffmpeg process remuxes the MPEG-TS it receives into the hub.
 * A caller that may not publish (bad Stream ID, wrong or missing key, busy path, too many sessions) gets an SRT
 * rejection handshake with an SRT_REJX_* reason, so it fails at once instead of timing out.
 * Datagrams that do not open with an SRT handshake are dropped, so garbage never reaches a session.
 */
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import type { Logger } from "../../../core/logger.ts";
import { type MediaAuth, srtTarget } from "../../auth/auth.ts";
import { type Hub, validPath } from "../../hub.ts";
import { FfmpegIngest } from "../../ingest.ts";
import { HS_CONCLUSION, HS_INDUCTION, parseHandshake, publishPath, REJ, rejection } from "./handshake.ts";

export interface SrtServerOptions {
  host: string;
  port: number;
  hub: Hub;
  ffmpegPath: string;
  stallMs: number;
  log: Logger;
  maxSessions?: number;
  /** Publish permissions and stream keys; none: anyone may publish. */
  auth?: MediaAuth;
}

interface Session {
  key: string;
  peer: RemoteInfo;
  /** Our side towards the session's ffmpeg. */
  relay: Socket;
  ffmpegPort: number;
  path: string | undefined;
  streamId: string | undefined;
  ingest: FfmpegIngest;
  /** The publish check is running: the caller's conclusion is held back (it retransmits until answered). */
  checking?: boolean;
}

/** How long a refused caller's retransmitted conclusions are answered with the same rejection. */
const REJECTED_MS = 5000;

const bind = (host: string, port: number): Promise<Socket> =>
  new Promise((resolve, reject) => {
    const s = createSocket("udp4");
    s.once("error", reject);
    s.bind(port, host, () => {
      s.off("error", reject);
      s.on("error", () => {});
      resolve(s);
    });
  });

/** A free loopback UDP port for a session's ffmpeg listener. */
async function freeUdpPort(): Promise<number> {
  const s = await bind("127.0.0.1", 0);
  const { port } = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export class SrtServer {
  readonly sessions = new Map<string, Session>();
  readonly #o: SrtServerOptions;
  readonly #log: Logger;
  readonly #socket: Socket;
  readonly #opening = new Set<string>();
  /** Refused callers by address: the rejection to repeat if the first one was lost. */
  readonly #rejected = new Map<string, { packet: Buffer; at: number }>();

  private constructor(o: SrtServerOptions, socket: Socket) {
    this.#o = o;
    this.#log = o.log.child({ server: "srt" });
    this.#socket = socket;
    socket.on("message", (msg, peer) => this.#onMessage(msg, peer));
  }

  static async start(o: SrtServerOptions): Promise<SrtServer> {
    const s = new SrtServer(o, await bind(o.host, o.port));
    s.#log.info("srt listening", { host: o.host, port: s.port });
    return s;
  }

  get port(): number {
    return this.#socket.address().port;
  }

  #onMessage(msg: Buffer, peer: RemoteInfo): void {
    const key = `${peer.address}:${peer.port}`;
    const refused = this.#rejected.get(key);
    if (refused) {
      if (Date.now() - refused.at < REJECTED_MS) {
        if (parseHandshake(msg)) this.#socket.send(refused.packet, peer.port, peer.address);
        return;
      }
      this.#rejected.delete(key);
    }
    const s = this.sessions.get(key);
    if (s) {
      if (!s.path && !this.#learnPath(s, msg)) return;
      s.relay.send(msg, s.ffmpegPort, "127.0.0.1");
      return;
    }
    const hs = parseHandshake(msg);
    if (!hs || hs.type !== HS_INDUCTION || this.#opening.has(key)) return;
    if (this.sessions.size + this.#opening.size >= (this.#o.maxSessions ?? 64)) {
      this.#refuse(key, peer, msg, REJ.OVERLOAD, "too many SRT sessions");
      return;
    }
    this.#opening.add(key);
    this.#open(key, peer)
      .catch((e) => this.#log.error("srt session failed to open", { remote: key, error: (e as Error).message }))
      .finally(() => this.#opening.delete(key));
  }

  /** Answers a caller's handshake with a rejection (repeated for its retransmissions) and ends its session. */
  #refuse(key: string, peer: RemoteInfo, msg: Buffer, reason: number, why: string): void {
    const now = Date.now();
    for (const [k, r] of this.#rejected) if (now - r.at >= REJECTED_MS) this.#rejected.delete(k);
    const packet = rejection(msg, reason);
    this.#rejected.set(key, { packet, at: now });
    this.#socket.send(packet, peer.port, peer.address);
    this.#log.warn("srt caller rejected", { remote: key, reason, why });
    this.sessions.get(key)?.ingest.stop(why);
  }

  /** A path another SRT caller is about to publish to, or that has a publisher: a second one is refused. */
  #busy(path: string, self: Session): boolean {
    if (this.#o.hub.get(path)) return true;
    for (const s of this.sessions.values()) if (s !== self && s.path === path) return true;
    return false;
  }

  /** Learns the path from the conclusion; false while the datagram must not reach ffmpeg yet. */
  #learnPath(s: Session, msg: Buffer): boolean {
    const hs = parseHandshake(msg);
    if (!hs || hs.type !== HS_CONCLUSION || hs.streamId === undefined) return true;
    if (s.checking) return false;
    s.streamId = hs.streamId;
    const auth = this.#o.auth;
    const target = auth ? srtTarget(hs.streamId) : undefined;
    const path = auth ? target?.path : publishPath(hs.streamId);
    if (!path || !validPath(path)) {
      // `read:<path>` / `m=request`: a well-formed request SRT here does not serve (ingest only).
      const mode = /^read:|[#,:]m=request\b/.test(hs.streamId) ? REJ.BAD_MODE : REJ.BAD_REQUEST;
      this.#refuse(s.key, s.peer, msg, mode, `streamid '${hs.streamId}' is not publish:<path>`);
      return false;
    }
    const admit = (): boolean => {
      if (!this.#busy(path, s)) {
        s.path = path;
        return true;
      }
      this.#refuse(s.key, s.peer, msg, REJ.CONFLICT, `path '${path}' already has a publisher`);
      return false;
    };
    if (!auth) return admit();
    s.checking = true;
    auth.check({ action: "publish", path, protocol: "srt", ip: s.peer.address, key: target?.key }).then(
      (d) => {
        s.checking = false;
        if (d.ok) admit();
        else this.#refuse(s.key, s.peer, msg, d.status === 401 ? REJ.UNAUTHORIZED : REJ.FORBIDDEN, d.reason);
      },
      (e) => this.#refuse(s.key, s.peer, msg, REJ.FORBIDDEN, `auth failed: ${(e as Error).message}`),
    );
    return false;
  }

  async #open(key: string, peer: RemoteInfo): Promise<void> {
    const ffmpegPort = await freeUdpPort();
    const relay = await bind("127.0.0.1", 0);
    // The caller retransmits its induction until answered, so datagrams sent before ffmpeg binds are not lost for good.
    const url = `srt://127.0.0.1:${ffmpegPort}?mode=listener&transtype=live`;
    const session: Session = { key, peer, relay, ffmpegPort, path: undefined, streamId: undefined } as Session;
    session.ingest = new FfmpegIngest({
      hub: this.#o.hub,
      path: () => session.path,
      protocol: "srt",
      remote: key,
      ffmpegPath: this.#o.ffmpegPath,
      // A short probe: MPEG-TS carries the codec parameters up front, and the default 5 s would delay the stream.
      input: ["-analyzeduration", "1000000", "-probesize", "1000000", "-f", "mpegts", "-i", url],
      stallMs: this.#o.stallMs,
      log: this.#log,
    });
    relay.on("message", (m) => this.#socket.send(m, peer.port, peer.address));
    this.sessions.set(key, session);
    this.#log.info("srt caller", { remote: key });
    const r = await session.ingest.done;
    this.sessions.delete(key);
    relay.close();
    this.#log.info("srt session ended", { remote: key, path: session.path, error: r.error || undefined });
  }

  async close(): Promise<void> {
    const done = [...this.sessions.values()].map((s) => {
      s.ingest.stop();
      return s.ingest.done;
    });
    await Promise.all(done);
    await new Promise<void>((r) => this.#socket.close(() => r()));
  }
}
