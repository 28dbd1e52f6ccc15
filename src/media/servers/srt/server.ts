/**
 * The SRT listener: SRT (draft-sharabayko-srt, live mode, HSv5) implemented in-process, for publishers
 * (`publish:<path>`) and readers (`read:<path>`), as libsrt callers (ffmpeg's srt://, OBS, GStreamer) speak it.
 *
 * Nothing is spent before a caller has proved its address and may do what it asks. Inductions are answered with
 * a SYN cookie (cookie.ts) and no state; a conclusion must echo the cookie (a spoofed source never saw it), carry
 * a Stream ID we understand, agree on encryption (the caller's key material must unwrap with the path's
 * passphrase), and pass the publish or read check; only then does a session (connection.ts) exist. A caller that
 * may not (bad Stream ID, wrong or missing key, wrong passphrase, busy path, no such stream, too many sessions)
 * gets an SRT rejection handshake with the reason, so it fails at once instead of timing out. Pending checks,
 * sessions (in all and per address) and the bytes all receive buffers hold are bounded; datagrams that are not a
 * handshake, from a caller with no session or for another socket id, are dropped.
 *
 * A publisher's in-order MPEG-TS goes through a TsDemuxer into the hub; a reader gets the hub's frames as TsMuxer
 * output, 7 TS packets (1316 bytes) per SRT packet. No process is spawned.
 */
import { randomInt } from "node:crypto";
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import type { Logger } from "../../../core/logger.ts";
import { type MediaAuth, type SrtTarget, srtTarget } from "../../auth/auth.ts";
import type { Frame } from "../../frame.ts";
import { type Hub, type MediaStream, type Reader, validPath } from "../../hub.ts";
import { TsDemuxer } from "../../protocols/mpegts/demux.ts";
import { TsMuxer } from "../../protocols/mpegts/mux.ts";
import { SrtConnection } from "./connection.ts";
import { SynCookies } from "./cookie.ts";
import { KdfBudget, type KeyMaterial, kekCached, openKm } from "./crypto.ts";
import {
  conclusionResponse,
  cookieOf,
  type Handshake,
  HS_CONCLUSION,
  HS_INDUCTION,
  inductionResponse,
  OPT,
  parseHandshake,
  REJ,
  rejection,
} from "./handshake.ts";

export interface SrtLimits {
  latencyMs: number;
  /** Global passphrase (null: none); a path's own (passphraseFor) wins. */
  passphrase: string | null;
  /** Key length we advertise to callers (bytes: 16, 24, 32). */
  pbkeylen: number;
  maxSessions: number;
  maxSessionsPerAddress: number;
  peerIdleTimeoutSeconds: number;
  receiveBufferPackets: number;
  sendBufferPackets: number;
  totalBufferBytes: number;
}

export const DEFAULT_SRT_LIMITS: SrtLimits = {
  latencyMs: 120,
  passphrase: null,
  pbkeylen: 16,
  maxSessions: 64,
  maxSessionsPerAddress: 16,
  peerIdleTimeoutSeconds: 5,
  receiveBufferPackets: 8192,
  sendBufferPackets: 8192,
  totalBufferBytes: 256 * 1024 * 1024,
};

export interface SrtServerOptions {
  host: string;
  port: number;
  hub: Hub;
  log: Logger;
  limits?: Partial<SrtLimits>;
  /** A path's own passphrase (undefined: the global one). */
  passphraseFor?: (path: string) => string | null | undefined;
  /** Publish/read permissions and stream keys; none: anyone may publish and read. */
  auth?: MediaAuth;
  /** Where a publisher's in-order TS goes (default: a TsDemuxer into the stream); the bench and tests swap it. */
  sink?: (stream: MediaStream) => { push(b: Buffer): void; end(): void };
}

export interface SrtSession {
  key: string;
  peer: RemoteInfo;
  mode: "publish" | "read";
  path: string;
  socketId: number;
  peerSocketId: number;
  conn: SrtConnection;
  /** The conclusion response, repeated when the caller's conclusion is retransmitted. */
  response: Buffer;
  stream: MediaStream | undefined;
  reader: Reader | undefined;
  /** A publisher's TS consumer. */
  sink: { push(b: Buffer): void; end(): void } | undefined;
}

/** How long a refused caller's retransmitted conclusions are answered with the same rejection. */
const REJECTED_MS = 5000;
/** Refused callers remembered at once (beyond it, a rejection is sent but not repeated). */
const MAX_REJECTED = 1024;
/** Access checks running at once; conclusions beyond it are dropped (the caller retransmits). */
const MAX_CHECKING = 64;
/** The most latency a caller may ask for (ms); libsrt's default is 120, long-haul links use a few seconds. */
export const MAX_PEER_LATENCY_MS = 8000;
/** Key material unwraps needing a fresh PBKDF2, per second, for all callers (see KdfBudget). */
const KDF_PER_SECOND = 64;
/** Wake-ups fall on this grid (ms): whatever comes due within one slot is handled in one wake-up, a bit late. */
const TICK_MS = 10;
const MTU = 1500;
/** SO_RCVBUF asked for (the kernel caps it at net.core.rmem_max). */
const RECV_BUFFER_BYTES = 4 * 1024 * 1024;
const FLOW_WINDOW = 8192;
const TS_PER_PACKET = 7 * 188;
const FLAGS = OPT.TSBPDSND | OPT.TSBPDRCV | OPT.HAICRYPT | OPT.TLPKTDROP | OPT.NAKREPORT | OPT.REXMITFLG;

const bind = (host: string, port: number): Promise<Socket> =>
  new Promise((resolve, reject) => {
    // A frame arrives as a burst of datagrams (a 1080p keyframe: hundreds): room for them while the loop is busy.
    const s = createSocket({ type: "udp4", recvBufferSize: RECV_BUFFER_BYTES });
    s.once("error", reject);
    s.bind(port, host, () => {
      s.off("error", reject);
      s.on("error", () => {});
      resolve(s);
    });
  });

export class SrtServer {
  readonly sessions = new Map<string, SrtSession>();
  readonly #o: SrtServerOptions;
  readonly #l: SrtLimits;
  readonly #log: Logger;
  readonly #socket: Socket;
  readonly #cookies = new SynCookies();
  readonly #kdf = new KdfBudget(KDF_PER_SECOND);
  /** Callers whose access check is running: their path (a publisher holds it meanwhile). */
  readonly #checking = new Map<string, { path: string; mode: string }>();
  /** Refused callers by address: the rejection to repeat if the first one was lost. */
  readonly #rejected = new Map<string, { packet: Buffer; at: number }>();
  #timer: NodeJS.Timeout | undefined;
  /** The session the last datagram was for. */
  #last: SrtSession | undefined;
  /** When the armed timer fires (µs, performance.now() clock; Infinity: none armed). */
  #wakeAt = Number.POSITIVE_INFINITY;
  #bufferBytes = 0;
  readonly #budget = {
    take: (n: number) => {
      if (this.#bufferBytes + n > this.#l.totalBufferBytes) return false;
      this.#bufferBytes += n;
      return true;
    },
    give: (n: number) => {
      this.#bufferBytes -= n;
    },
  };

  private constructor(o: SrtServerOptions, socket: Socket) {
    this.#o = o;
    this.#l = { ...DEFAULT_SRT_LIMITS, ...o.limits };
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

  /** Bytes all sessions' receive buffers hold now. */
  get bufferBytes(): number {
    return this.#bufferBytes;
  }

  #send(b: Buffer, peer: RemoteInfo): void {
    this.#socket.send(b, peer.port, peer.address);
  }

  #onMessage(msg: Buffer, peer: RemoteInfo): void {
    if (msg.length < 16) return;
    // The session of the last datagram first: a publisher's stream comes from one address, so most datagrams
    // need no "address:port" string built and hashed for the map.
    const last = this.#last;
    if (last && last.peer.port === peer.port && last.peer.address === peer.address && !last.conn.closed) {
      if (msg.readUInt32BE(12) === last.socketId) {
        this.#input(last, msg);
        return;
      }
    }
    const key = `${peer.address}:${peer.port}`;
    const s = this.sessions.get(key);
    // A session's traffic is addressed to its socket id; a handshake repeat (dest 0) is answered again.
    if (s && msg.readUInt32BE(12) === s.socketId) {
      this.#last = s;
      this.#input(s, msg);
      return;
    }
    const hs = parseHandshake(msg);
    if (!hs) return;
    if (hs.type === HS_INDUCTION) {
      // Stateless: the same answer every time, from the address and the minute.
      const cookie = this.#cookies.make(peer.address, peer.port);
      this.#send(inductionResponse(msg, cookie, this.#advertisedKeyLen()), peer);
      return;
    }
    if (hs.type !== HS_CONCLUSION || !this.#cookies.valid(peer.address, peer.port, cookieOf(msg))) return;
    if (s) {
      if (s.peerSocketId === hs.socketId) this.#send(s.response, peer);
      return;
    }
    const refused = this.#rejected.get(key);
    if (refused && Date.now() - refused.at < REJECTED_MS) {
      this.#send(refused.packet, peer);
      return;
    }
    this.#rejected.delete(key);
    if (this.#checking.has(key) || this.#checking.size >= MAX_CHECKING) return;
    this.#conclude(key, peer, msg, hs);
  }

  /** A session's work on a peer's datagram or a wake-up; a throw (a bug a peer's bytes reach) ends that session only. */
  #guard(s: SrtSession, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.#log.warn("srt session failed", { remote: s.key, path: s.path, error: (e as Error).message });
      try {
        s.conn.close(`failed: ${(e as Error).message}`);
      } catch {}
    }
  }

  #input(s: SrtSession, msg: Buffer): void {
    this.#guard(s, () => s.conn.input(msg));
    const at = s.conn.wakeAt;
    if (at < this.#wakeAt) this.#schedule(at);
  }

  #advertisedKeyLen(): number {
    return this.#l.passphrase ? this.#l.pbkeylen : 0;
  }

  /** A conclusion with a valid cookie: may this caller do what its Stream ID asks? */
  #conclude(key: string, peer: RemoteInfo, msg: Buffer, hs: Handshake): void {
    const t = srtTarget(hs.streamId);
    if (!t || !validPath(t.path)) {
      // Not the Stream ID itself in the log: it may carry a stream key.
      const what = hs.streamId === undefined ? "no streamid" : `a streamid of ${hs.streamId.length} characters`;
      this.#refuse(key, peer, msg, REJ.BAD_REQUEST, `${what} that is not publish:<path> or read:<path>`);
      return;
    }
    if (hs.version !== 5 || !hs.hsreq) {
      this.#refuse(key, peer, msg, REJ.BAD_REQUEST, "not an SRT 1.3+ (HSv5) caller");
      return;
    }
    // Encryption: both sides have the passphrase, or neither does (libsrt's enforced encryption).
    const pass = this.#o.passphraseFor?.(t.path) ?? this.#l.passphrase;
    let km: KeyMaterial | undefined;
    if (pass || hs.kmreq) {
      if (!pass || !hs.kmreq) {
        const why = pass ? "the path needs a passphrase" : "the caller encrypts, the path has no passphrase";
        this.#refuse(key, peer, msg, REJ.UNSECURE, why);
        return;
      }
      if (!kekCached(hs.kmreq, pass) && !this.#kdf.take()) return; // dropped: the caller retransmits
      const r = openKm(hs.kmreq, pass);
      if (!r.ok) {
        this.#refuse(key, peer, msg, r.badSecret ? REJ.BAD_SECRET : REJ.UNSECURE, r.why);
        return;
      }
      km = r.km;
    }
    if (t.mode === "publish" && !this.#room(key, peer, msg, t.path)) return;
    if (t.mode === "read" && !this.#readerRoom(key, peer, msg)) return;
    this.#checking.set(key, { path: t.path, mode: t.mode });
    const auth = this.#o.auth;
    const check = auth
      ? t.mode === "publish"
        ? auth.check({ action: "publish", path: t.path, protocol: "srt", ip: peer.address, key: t.key })
        : auth.check({ action: "read", path: t.path, protocol: "srt", ip: peer.address, query: t.query })
      : Promise.resolve(undefined);
    check.then(
      (d) => {
        this.#checking.delete(key);
        if (d && !d.ok) this.#refuse(key, peer, msg, d.status === 401 ? REJ.UNAUTHORIZED : REJ.FORBIDDEN, d.reason);
        // Checked again: another caller may have taken the path or the last session meanwhile.
        else if (t.mode === "publish" ? this.#room(key, peer, msg, t.path) : this.#readerRoom(key, peer, msg))
          this.#open(key, peer, msg, hs, t, km);
      },
      (e) => {
        this.#checking.delete(key);
        this.#refuse(key, peer, msg, REJ.FORBIDDEN, `auth failed: ${(e as Error).message}`);
      },
    );
  }

  #sessionRoom(key: string, peer: RemoteInfo, msg: Buffer): boolean {
    let fromAddress = 0;
    for (const s of this.sessions.values()) if (s.peer.address === peer.address) fromAddress++;
    if (this.sessions.size >= this.#l.maxSessions || fromAddress >= this.#l.maxSessionsPerAddress) {
      this.#refuse(key, peer, msg, REJ.OVERLOAD, "too many SRT sessions");
      return false;
    }
    return true;
  }

  /** Whether a publisher session for `path` may start (else the caller is refused): sessions and the path are free. */
  #room(key: string, peer: RemoteInfo, msg: Buffer, path: string): boolean {
    if (!this.#sessionRoom(key, peer, msg)) return false;
    const other = [...this.#checking].some(([k, c]) => k !== key && c.mode === "publish" && c.path === path);
    if (this.#o.hub.get(path) || other) {
      this.#refuse(key, peer, msg, REJ.CONFLICT, `path '${path}' already has a publisher`);
      return false;
    }
    return true;
  }

  #readerRoom(key: string, peer: RemoteInfo, msg: Buffer): boolean {
    return this.#sessionRoom(key, peer, msg);
  }

  /** Answers a caller's handshake with a rejection (repeated for its retransmissions). */
  #refuse(key: string, peer: RemoteInfo, msg: Buffer, reason: number, why: string): void {
    const now = Date.now();
    for (const [k, r] of this.#rejected) if (now - r.at >= REJECTED_MS) this.#rejected.delete(k);
    const packet = rejection(msg, reason);
    if (this.#rejected.size < MAX_REJECTED) this.#rejected.set(key, { packet, at: now });
    this.#send(packet, peer);
    this.#log.warn("srt caller rejected", { remote: key, reason, why });
  }

  #open(key: string, peer: RemoteInfo, msg: Buffer, hs: Handshake, t: SrtTarget, km: KeyMaterial | undefined): void {
    const hsreq = hs.hsreq as NonNullable<Handshake["hsreq"]>;
    let stream: MediaStream | undefined;
    if (t.mode === "read") {
      stream = this.#o.hub.get(t.path);
      if (!stream || stream.ended) {
        this.#refuse(key, peer, msg, REJ.NOT_FOUND, `no stream is published on '${t.path}'`);
        return;
      }
    }
    // Latency: the larger of ours and what the caller proposes, each way, the caller's capped: it sets how long
    // packets are held for delivery or retransmission (up to 65 s each way asked, for every session).
    const rcvLatencyMs = Math.max(this.#l.latencyMs, Math.min(MAX_PEER_LATENCY_MS, hsreq.sndLatency));
    const sndLatencyMs = Math.max(this.#l.latencyMs, Math.min(MAX_PEER_LATENCY_MS, hsreq.rcvLatency));
    let socketId = randomInt(1, 0x3fffffff);
    while ([...this.sessions.values()].some((s) => s.socketId === socketId)) socketId = randomInt(1, 0x3fffffff);
    const response = conclusionResponse(msg, {
      socketId,
      mtu: Math.min(MTU, hs.mtu || MTU),
      flowWindow: Math.min(FLOW_WINDOW, hs.flowWindow || FLOW_WINDOW),
      flags: FLAGS & (hsreq.flags | OPT.HAICRYPT | OPT.NAKREPORT | OPT.TLPKTDROP),
      rcvLatency: rcvLatencyMs,
      sndLatency: sndLatencyMs,
      kmrsp: km ? hs.kmreq : undefined,
      peerIp: peer.address,
    });
    const pass = this.#o.passphraseFor?.(t.path) ?? this.#l.passphrase;
    const session = {
      key,
      peer,
      mode: t.mode,
      path: t.path,
      socketId,
      peerSocketId: hs.socketId,
      response,
    } as SrtSession;
    session.conn = new SrtConnection({
      send: (b) => this.#send(b, peer),
      peerSocketId: hs.socketId,
      isn: hs.isn,
      rcvLatencyMs,
      sndLatencyMs,
      rcvBufferPackets: this.#l.receiveBufferPackets,
      sndBufferPackets: this.#l.sendBufferPackets,
      km,
      openKm: (m) => {
        const r = pass ? openKm(m, pass) : undefined;
        return r?.ok ? r.km : undefined;
      },
      onData: t.mode === "publish" ? (b) => session.sink?.push(b) : undefined,
      onClose: (reason) => this.#closed(session, reason),
      peerIdleMs: this.#l.peerIdleTimeoutSeconds * 1000,
      budget: this.#budget,
    });
    this.sessions.set(key, session);
    if (t.mode === "publish") {
      try {
        session.stream = this.#o.hub.publish(t.path, { protocol: "srt", remote: key, since: Date.now() });
      } catch (e) {
        this.sessions.delete(key);
        this.#refuse(key, peer, msg, REJ.CONFLICT, (e as Error).message);
        return;
      }
      session.sink = (this.#o.sink ?? this.#demux)(session.stream);
      this.#send(response, peer);
    } else {
      // The answer first: data before it would be refused by the caller (still in its handshake).
      this.#send(response, peer);
      this.#serve(session, stream as MediaStream);
    }
    this.#log.info("srt session", {
      remote: key,
      mode: t.mode,
      path: t.path,
      encrypted: !!km,
      latencyMs: rcvLatencyMs,
    });
    this.#schedule(session.conn.wakeAt);
  }

  /** Arms the timer for `at` (µs) rounded up to the grid, unless it fires by then anyway. */
  #schedule(at: number): void {
    if (at === Number.POSITIVE_INFINITY) return;
    const slot = Math.ceil(at / (TICK_MS * 1000)) * TICK_MS * 1000;
    if (slot >= this.#wakeAt) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#wakeAt = slot;
    this.#timer = setTimeout(() => this.#tick(), Math.max(1, Math.ceil((slot - performance.now() * 1000) / 1000)));
  }

  #demux = (stream: MediaStream) => {
    // A publisher's broken TS can report an error per TS packet: logged at most once a second, with the count.
    let last = Number.NEGATIVE_INFINITY;
    let quiet = 0;
    const d = new TsDemuxer((f: Frame) => stream.write(f), {
      onError: (e: Error) => {
        const now = Date.now();
        if (now - last < 1000) {
          quiet++;
          return;
        }
        this.#log.warn("srt publisher's MPEG-TS", { path: stream.path, error: e.message, alsoSkipped: quiet });
        last = now;
        quiet = 0;
      },
    });
    return { push: (b: Buffer) => d.push(b), end: () => d.end() };
  };

  /** A reader: the hub's frames as TS, 7 packets per SRT packet, as they come. */
  #serve(s: SrtSession, stream: MediaStream): void {
    const reader = stream.addReader("srt", s.key);
    s.reader = reader;
    s.stream = stream;
    const mux = new TsMuxer();
    // Runs inside the publisher's write (Reader.listen): it must not throw.
    const drain = () =>
      this.#guard(s, () => {
        for (let f = reader.poll(); f; f = reader.poll()) {
          const ts = mux.frame(f);
          for (let i = 0; i < ts.length; i += TS_PER_PACKET) s.conn.write(ts.subarray(i, i + TS_PER_PACKET));
          if (s.conn.closed) return;
        }
        if (reader.closed && !s.conn.closed) s.conn.close("the stream ended");
      });
    reader.listen(drain);
    drain();
  }

  #closed(s: SrtSession, reason: string): void {
    if (this.#last === s) this.#last = undefined;
    if (this.sessions.get(s.key) === s) this.sessions.delete(s.key);
    if (s.mode === "publish") {
      try {
        s.sink?.end();
      } catch {}
      s.stream?.end();
    } else s.reader?.close();
    const st = s.conn.stats;
    this.#log.info("srt session ended", {
      remote: s.key,
      mode: s.mode,
      path: s.path,
      reason,
      received: st.packetsReceived,
      lost: st.packetsLost,
      dropped: st.packetsDropped,
      retransmitted: st.packetsRetransmitted,
    });
    if (this.sessions.size === 0 && this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#wakeAt = Number.POSITIVE_INFINITY;
    }
  }

  #tick(): void {
    this.#timer = undefined;
    this.#wakeAt = Number.POSITIVE_INFINITY;
    for (const s of [...this.sessions.values()]) this.#guard(s, () => s.conn.tick());
    let next = Number.POSITIVE_INFINITY;
    for (const s of this.sessions.values()) next = Math.min(next, s.conn.wakeAt);
    this.#schedule(next);
  }

  async close(): Promise<void> {
    for (const s of [...this.sessions.values()]) s.conn.close("the server is stopping");
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    await new Promise<void>((r) => this.#socket.close(() => r()));
  }
}
