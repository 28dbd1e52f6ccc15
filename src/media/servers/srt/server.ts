/**
 * The SRT listener (ingest only). ffmpeg's libsrt does the SRT protocol but, as a listener, cannot tell us the
 * caller's Stream ID or serve several callers. So we own the public UDP port and relay each admitted caller (by
 * address) to its own `ffmpeg -i srt://127.0.0.1:<internal>?mode=listener` process, which remuxes the MPEG-TS it
 * receives into the hub.
 *
 * Nothing is spent before a caller has proved its address and may publish. We answer inductions ourselves with a
 * SYN cookie (cookie.ts) and keep no state; a conclusion must echo the cookie (a spoofed source never saw it),
 * carry a `publish:<path>` Stream ID and pass the publish check, and only then is ffmpeg spawned. The relay then
 * does the induction with ffmpeg itself and hands it the caller's conclusion with ffmpeg's cookie in place of
 * ours, so the caller's handshake completes with ffmpeg. Pending publish checks and sessions are bounded. A
 * caller that may not publish (bad Stream ID, wrong or missing key, busy path, too many sessions) gets an SRT
 * rejection handshake with an SRT_REJX_* reason, so it fails at once instead of timing out. Datagrams that are
 * not an SRT handshake, from a caller with no session, are dropped.
 */
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import type { Logger } from "../../../core/logger.ts";
import { type MediaAuth, srtTarget } from "../../auth/auth.ts";
import { type Hub, validPath } from "../../hub.ts";
import { FfmpegIngest } from "../../ingest.ts";
import { SynCookies } from "./cookie.ts";
import {
  cookieOf,
  HS_CONCLUSION,
  HS_INDUCTION,
  inductionRequest,
  inductionResponse,
  parseHandshake,
  publishPath,
  REJ,
  rejection,
  withCookie,
} from "./handshake.ts";

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
  path: string;
  ingest: FfmpegIngest;
  /** The cookie we gave the caller, and the one ffmpeg gave the relay (undefined: ffmpeg has not answered). */
  ours: number;
  theirs: number | undefined;
  /** The caller's latest conclusion: forwarded once ffmpeg has answered the relay's induction. */
  conclusion: Buffer;
}

/** How long a refused caller's retransmitted conclusions are answered with the same rejection. */
const REJECTED_MS = 5000;
/** Refused callers remembered at once (beyond it, a rejection is sent but not repeated). */
const MAX_REJECTED = 1024;
/** Publish checks running at once; conclusions beyond it are dropped (the caller retransmits). */
const MAX_CHECKING = 64;
/** Sessions from one address: a caller who can receive our cookies still cannot take every session. */
const MAX_SESSIONS_PER_ADDRESS = 16;
/** The relay's induction to a starting ffmpeg: resent this often until answered, given up after the limit. */
const FFMPEG_RETRY_MS = 50;
const FFMPEG_HANDSHAKE_MS = 10_000;

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
  /** ffmpeg processes spawned so far (tests prove a flood spawns none). */
  spawned = 0;
  readonly #o: SrtServerOptions;
  readonly #log: Logger;
  readonly #socket: Socket;
  readonly #cookies = new SynCookies();
  /** Callers whose publish check is running or whose session is starting. */
  readonly #checking = new Map<string, string>();
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
    const s = this.sessions.get(key);
    if (s) {
      this.#fromCaller(s, msg);
      return;
    }
    const hs = parseHandshake(msg);
    if (!hs) return;
    if (hs.type === HS_INDUCTION) {
      // Stateless: the same answer every time, from the address and the minute.
      this.#socket.send(inductionResponse(msg, this.#cookies.make(peer.address, peer.port)), peer.port, peer.address);
      return;
    }
    if (hs.type !== HS_CONCLUSION || !this.#cookies.valid(peer.address, peer.port, cookieOf(msg))) return;
    const refused = this.#rejected.get(key);
    if (refused && Date.now() - refused.at < REJECTED_MS) {
      this.#socket.send(refused.packet, peer.port, peer.address);
      return;
    }
    this.#rejected.delete(key);
    if (this.#checking.has(key) || this.#checking.size >= MAX_CHECKING) return;
    this.#conclude(key, peer, msg, hs.streamId);
  }

  /** A conclusion with a valid cookie: may this caller publish where it asks? */
  #conclude(key: string, peer: RemoteInfo, msg: Buffer, streamId: string | undefined): void {
    const auth = this.#o.auth;
    const target = auth && streamId !== undefined ? srtTarget(streamId) : undefined;
    const path = auth ? target?.path : publishPath(streamId);
    if (!path || !validPath(path)) {
      // `read:<path>` / `m=request`: a well-formed request SRT here does not serve (ingest only).
      const mode = streamId && /^read:|[#,:]m=request\b/.test(streamId) ? REJ.BAD_MODE : REJ.BAD_REQUEST;
      // Not the Stream ID itself in the log: it may carry a stream key.
      const what = streamId === undefined ? "no streamid" : `a streamid of ${streamId.length} characters`;
      this.#refuse(key, peer, msg, mode, `${what} that is not publish:<path>`);
      return;
    }
    if (!this.#room(key, peer, msg, path)) return;
    this.#checking.set(key, path);
    const check = auth
      ? auth.check({ action: "publish", path, protocol: "srt", ip: peer.address, key: target?.key })
      : Promise.resolve(undefined);
    check.then(
      (d) => {
        if (d && !d.ok) this.#refuse(key, peer, msg, d.status === 401 ? REJ.UNAUTHORIZED : REJ.FORBIDDEN, d.reason);
        // Checked again: another caller may have taken the path or the last session meanwhile.
        else if (this.#room(key, peer, msg, path)) {
          this.#open(key, peer, msg, path).catch((e) => {
            this.#checking.delete(key);
            this.#log.error("srt session failed to open", { remote: key, error: (e as Error).message });
          });
          return;
        }
        this.#checking.delete(key);
      },
      (e) => {
        this.#checking.delete(key);
        this.#refuse(key, peer, msg, REJ.FORBIDDEN, `auth failed: ${(e as Error).message}`);
      },
    );
  }

  /** Whether a session for `path` may start (else the caller is refused): sessions and the path are free. */
  #room(key: string, peer: RemoteInfo, msg: Buffer, path: string): boolean {
    let fromAddress = 0;
    for (const s of this.sessions.values()) if (s.peer.address === peer.address) fromAddress++;
    if (this.sessions.size >= (this.#o.maxSessions ?? 64) || fromAddress >= MAX_SESSIONS_PER_ADDRESS) {
      this.#refuse(key, peer, msg, REJ.OVERLOAD, "too many SRT sessions");
      return false;
    }
    const other = [...this.#checking].some(([k, p]) => k !== key && p === path);
    if (this.#o.hub.get(path) || other || [...this.sessions.values()].some((s) => s.path === path)) {
      this.#refuse(key, peer, msg, REJ.CONFLICT, `path '${path}' already has a publisher`);
      return false;
    }
    return true;
  }

  /** Answers a caller's handshake with a rejection (repeated for its retransmissions) and ends its session. */
  #refuse(key: string, peer: RemoteInfo, msg: Buffer, reason: number, why: string): void {
    const now = Date.now();
    for (const [k, r] of this.#rejected) if (now - r.at >= REJECTED_MS) this.#rejected.delete(k);
    const packet = rejection(msg, reason);
    if (this.#rejected.size < MAX_REJECTED) this.#rejected.set(key, { packet, at: now });
    this.#socket.send(packet, peer.port, peer.address);
    this.#log.warn("srt caller rejected", { remote: key, reason, why });
    this.sessions.get(key)?.ingest.stop(why);
  }

  /** A datagram from a caller with a session: to ffmpeg once it has answered the relay, with its cookie. */
  #fromCaller(s: Session, msg: Buffer): void {
    const hs = parseHandshake(msg);
    if (hs?.type === HS_INDUCTION) {
      this.#socket.send(inductionResponse(msg, s.ours), s.peer.port, s.peer.address);
      return;
    }
    if (hs?.type === HS_CONCLUSION) s.conclusion = Buffer.from(msg);
    if (s.theirs === undefined) return;
    const out = hs?.type === HS_CONCLUSION && cookieOf(msg) === s.ours ? withCookie(msg, s.theirs) : msg;
    s.relay.send(out, s.ffmpegPort, "127.0.0.1");
  }

  /** A datagram from the session's ffmpeg: its induction answer stays with the relay; the rest goes on. */
  #fromFfmpeg(s: Session, msg: Buffer): void {
    const hs = parseHandshake(msg);
    if (hs?.type === HS_INDUCTION) {
      if (s.theirs === undefined) {
        s.theirs = cookieOf(msg);
        s.relay.send(withCookie(s.conclusion, s.theirs), s.ffmpegPort, "127.0.0.1");
      }
      return;
    }
    const out = hs && s.theirs !== undefined && cookieOf(msg) === s.theirs ? withCookie(msg, s.ours) : msg;
    this.#socket.send(out, s.peer.port, s.peer.address);
  }

  async #open(key: string, peer: RemoteInfo, conclusion: Buffer, path: string): Promise<void> {
    const ffmpegPort = await freeUdpPort();
    const relay = await bind("127.0.0.1", 0);
    const url = `srt://127.0.0.1:${ffmpegPort}?mode=listener&transtype=live`;
    const ours = cookieOf(conclusion);
    const session: Session = { key, peer, relay, ffmpegPort, path, ours, theirs: undefined, conclusion } as Session;
    this.spawned++;
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
    relay.on("message", (m) => this.#fromFfmpeg(session, m));
    this.sessions.set(key, session);
    // The session holds the path from now on (the check entry held it while ffmpeg's ports were found).
    this.#checking.delete(key);
    this.#log.info("srt caller", { remote: key, path });
    // ffmpeg binds its port a moment after it starts: the induction is resent until it answers.
    const started = Date.now();
    const induction = inductionRequest(conclusion);
    const timer = setInterval(() => {
      if (session.theirs !== undefined) clearInterval(timer);
      else if (Date.now() - started > FFMPEG_HANDSHAKE_MS) {
        clearInterval(timer);
        session.ingest.stop("ffmpeg did not answer the SRT handshake");
      } else relay.send(induction, ffmpegPort, "127.0.0.1");
    }, FFMPEG_RETRY_MS);
    const r = await session.ingest.done;
    clearInterval(timer);
    this.sessions.delete(key);
    relay.close();
    this.#log.info("srt session ended", { remote: key, path, error: r.error || undefined });
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
