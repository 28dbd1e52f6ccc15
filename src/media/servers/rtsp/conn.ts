/**
 * One RTSP connection (RFC 2326) and the session it sets up: a publisher (OPTIONS, ANNOUNCE with an SDP, SETUP
 * per track, RECORD, TEARDOWN) or a reader (OPTIONS, DESCRIBE, SETUP per track, PLAY, GET_PARAMETER keepalives,
 * TEARDOWN). RTP and RTCP go interleaved on this connection ($ frames) or over UDP through a server port pair per
 * track. A session lives as long as its connection (ffmpeg, VLC, GStreamer and cameras keep it open).
 *
 * Limits, so unauthenticated peers cannot take memory or sockets: requests are bounded (head, header count,
 * body), a connection must be recording or playing within the handshake timeout and may send only so many
 * requests and interleaved bytes before that, and one whose peer goes quiet (no request, no RTP/RTCP) for the
 * idle timeout is closed; a TCP reader is exempt while what is written to it drains (one that stops reading is
 * closed after the idle timeout too). A peer that sends requests faster than it reads the answers is not read
 * until they drain. Bad bytes, and anything a peer's packets make throw, close this connection only.
 */
import { randomBytes } from "node:crypto";
import type { Socket } from "node:net";
import { isAmiError } from "../../../core/errors.ts";
import type { Logger } from "../../../core/logger.ts";
import type { MediaAuth } from "../../auth/auth.ts";
import { type Hub, type MediaStream, type Reader, validPath } from "../../hub.ts";
import { parseRtp, parseSenderReport } from "../../protocols/rtp/packet.ts";
import { type OutTrack, RtpSender, streamTracks } from "../../protocols/rtsp/from-stream.ts";
import {
  interleaved,
  parseTransport,
  RtspError,
  RtspParser,
  type RtspRequest,
  response,
  type Transport,
} from "../../protocols/rtsp/message.ts";
import { buildSdp, parseSdp, type SdpTrack } from "../../protocols/rtsp/sdp.ts";
import { checkTracks, RtspToStream } from "../../protocols/rtsp/to-stream.ts";
import { challenges, credential, newNonce } from "./digest.ts";
import type { UdpHolder, UdpPair, UdpPorts } from "./udp.ts";

export interface RtspConnLimits {
  /** From accept to RECORD or PLAY. */
  handshakeTimeoutMs: number;
  /** No request and no RTP/RTCP from the peer for this long: closed (also the advertised session timeout). */
  idleTimeoutMs: number;
  maxRequestBytes: number;
  maxHeaders: number;
  maxBodyBytes: number;
  /** Requests a connection may send before it records or plays. */
  maxRequestsBeforeStart: number;
}

export interface RtspConnOptions {
  hub: Hub;
  log: Logger;
  protocol: "rtsp" | "rtsps";
  limits: RtspConnLimits;
  auth?: MediaAuth;
  /** Server port pairs for RTP over UDP; none: TCP only (461 for UDP). */
  udp?: UdpPorts;
}

/** Interleaved bytes (RTCP, early RTP) accepted before RECORD or PLAY. */
const PRE_START_BYTES = 64 * 1024;
/** A TCP reader whose socket holds this much unsent is skipped until it drains (its hub queue then bounds it). */
const TCP_HIGH_WATER = 1024 * 1024;
const PUBLIC = "OPTIONS, DESCRIBE, ANNOUNCE, SETUP, PLAY, RECORD, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER";

interface TrackSetup {
  tcp?: [number, number];
  udp?: { pair: UdpPair; client: [number, number] };
}

interface Session {
  id: string;
  path: string;
  mode: "publish" | "read";
  /** publish: the announced tracks; read: what DESCRIBE offered. */
  announced: SdpTrack[];
  offered: OutTrack[];
  /** The request URL without a track control (RTP-Info). */
  base: string;
  setup: Map<number, TrackSetup>;
  transport: "tcp" | "udp" | undefined;
}

/** Path, query and trailing part (a track control) of an RTSP URL; undefined: not one of ours. */
export function splitUrl(url: string): { rest: string; query: string } | undefined {
  let u = url;
  const m = /^rtsps?:\/\/[^/]*/i.exec(u);
  if (m) u = u.slice(m[0].length);
  else if (!u.startsWith("/")) return undefined;
  u = u.replace(/^\/+/, "");
  const q = u.indexOf("?");
  if (q < 0) return { rest: u.replace(/\/+$/, ""), query: "" };
  // ffmpeg appends the track control after the query: live/cam1?key=K/streamid=0.
  const query = u.slice(q + 1);
  const slash = query.indexOf("/");
  if (slash < 0) return { rest: u.slice(0, q).replace(/\/+$/, ""), query };
  return { rest: `${u.slice(0, q).replace(/\/+$/, "")}/${query.slice(slash + 1)}`, query: query.slice(0, slash) };
}

/**
 * Whether a Digest `uri` names the resource of the request URL (RFC 7616 §3.4.6): the same path, track control
 * and query (scheme, host and port aside: the client may name this server differently), or for a SETUP the
 * stream's path (live555/VLC sign SETUP with the presentation URL).
 */
export function sameResource(uri: string, requestUrl: string, path: string): boolean {
  const u = splitUrl(uri);
  const r = splitUrl(requestUrl);
  if (!u || !r || u.query !== r.query) return false;
  return u.rest === r.rest || u.rest === path;
}

/** Resolves at the socket's next 'drain' or its 'close', whichever comes first; the other listener is removed. */
export function drainedOrClosed(socket: Socket): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      socket.off("drain", done);
      socket.off("close", done);
      resolve();
    };
    socket.once("drain", done);
    socket.once("close", done);
  });
}

const plainIp = (ip: string) => (ip.startsWith("::ffff:") ? ip.slice(7) : ip);

/**
 * Where a UDP track's packets may come from: the client's address, and the port its SETUP named (client_port) or,
 * for a client behind a NAT that rewrote it (symmetric RTP, as MediaMTX allows), the port its first packet came
 * from. The first packet from the client's address locks the port; anything else from then on is dropped, so
 * another program on that address (or behind the same NAT) cannot inject packets into the session.
 */
export class UdpSource {
  readonly #ip: string;
  readonly declared: number;
  #port: number | undefined;
  constructor(ip: string, declared: number) {
    this.#ip = ip;
    this.declared = declared;
  }
  /** The port packets are accepted from; undefined until the first packet. */
  get port(): number | undefined {
    return this.#port;
  }
  accepts(address: string, port: number): boolean {
    if (plainIp(address) !== this.#ip) return false;
    this.#port ??= port;
    return port === this.#port;
  }
}

export class RtspConn {
  readonly socket: Socket;
  readonly remote: string;
  readonly #ip: string;
  readonly #o: RtspConnOptions;
  readonly #parser: RtspParser;
  readonly #nonce = newNonce();
  #closed = false;
  #session: Session | undefined;
  #authorized = new Set<string>();
  #requests = 0;
  #preStartBytes = 0;
  #lastActivity = Date.now();
  /** Last time the socket had nothing unsent or drained it (a TCP reader's liveness). */
  #lastDrain = Date.now();
  #handed = 0;
  /** Reading stopped until the socket drains (the peer does not read what it asked for). */
  #paused = false;
  #startTimer: NodeJS.Timeout | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  #srTimer: NodeJS.Timeout | undefined;
  #publishing: MediaStream | undefined;
  #toStream: Pick<RtspToStream, "push" | "report"> | undefined;
  #reader: Reader | undefined;
  /** This connection as a holder of UDP port pairs (the pool takes them back for a poorer address). */
  readonly #udpHolder: UdpHolder = {
    address: "",
    started: () => this.#publishing !== undefined || this.#reader !== undefined,
    reclaim: () => this.close("its UDP ports were taken back for another client address (pool full)"),
  };
  /** Requests are answered in order; an async one (auth) holds the rest. */
  #queue: Promise<void> = Promise.resolve();

  constructor(socket: Socket, o: RtspConnOptions) {
    this.socket = socket;
    this.#o = o;
    this.#ip = plainIp(socket.remoteAddress ?? "");
    this.#udpHolder.address = this.#ip;
    this.remote = `${socket.remoteAddress}:${socket.remotePort}`;
    const l = o.limits;
    this.#parser = new RtspParser({ maxHead: l.maxRequestBytes, maxHeaders: l.maxHeaders, maxBody: l.maxBodyBytes });
    socket.setNoDelay(true);
    this.#startTimer = setTimeout(
      () => this.close(`not recording or playing within ${l.handshakeTimeoutMs / 1000} s`),
      l.handshakeTimeoutMs,
    );
    this.#idleTimer = setInterval(
      () => {
        const now = Date.now();
        // Progress: nothing left unsent, or more handed to the kernel since the last look (bytesWritten counts
        // what is still queued too).
        const handed = this.socket.bytesWritten - this.socket.writableLength;
        if (this.socket.writableLength === 0 || handed !== this.#handed) this.#lastDrain = now;
        this.#handed = handed;
        if (this.#reader && this.#session?.transport === "tcp") {
          // Written to all the time, a TCP reader may send nothing back; but what we write must go somewhere.
          if (now - this.#lastDrain > l.idleTimeoutMs)
            this.close(`nothing written could be sent for ${l.idleTimeoutMs / 1000} s`);
          return;
        }
        if (now - this.#lastActivity > l.idleTimeoutMs) this.close(`nothing received for ${l.idleTimeoutMs / 1000} s`);
      },
      Math.min(5000, l.idleTimeoutMs),
    );
    socket.on("data", (d: Buffer) => this.#onData(d));
    socket.on("drain", () => {
      this.#lastDrain = Date.now();
      if (this.#paused && !this.#closed) {
        this.#paused = false;
        socket.resume();
      }
    });
    socket.on("error", () => {});
    socket.on("close", () => this.#cleanup());
  }

  get role(): "publisher" | "reader" | "idle" {
    return this.#publishing ? "publisher" : this.#reader ? "reader" : "idle";
  }

  get path(): string | undefined {
    return this.#session?.path;
  }

  close(reason: string): void {
    if (this.#closed) return;
    this.#o.log.info("rtsp connection closed", { remote: this.remote, reason });
    this.socket.destroy();
    this.#cleanup();
  }

  #cleanup(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#startTimer);
    clearInterval(this.#idleTimer);
    clearInterval(this.#srTimer);
    this.#endSession();
  }

  #endSession(): void {
    if (this.#publishing) {
      this.#o.log.info("rtsp publisher left", { path: this.#publishing.path, remote: this.remote });
      this.#publishing.end();
      this.#publishing = undefined;
    }
    this.#toStream = undefined;
    this.#reader?.close();
    this.#reader = undefined;
    clearInterval(this.#srTimer);
    for (const s of this.#session?.setup.values() ?? []) s.udp?.pair.close();
    this.#session = undefined;
  }

  #started(): void {
    clearTimeout(this.#startTimer);
    this.#startTimer = undefined;
  }

  #onData(d: Buffer): void {
    if (this.#closed) return;
    this.#lastActivity = Date.now();
    let msgs: ReturnType<RtspParser["push"]>;
    try {
      msgs = this.#parser.push(d);
    } catch (e) {
      const status = e instanceof RtspError ? e.status : 400;
      if (!this.#closed) this.socket.end(response(status, undefined, [["Connection", "close"]]));
      this.close(`bad request: ${(e as Error).message}`);
      return;
    }
    for (const m of msgs) {
      if (this.#closed) return;
      if ("channel" in m) this.#onInterleaved(m.channel, m.data);
      else {
        this.#requests++;
        if (this.#startTimer !== undefined && this.#requests > this.#o.limits.maxRequestsBeforeStart) {
          this.close(`more than ${this.#o.limits.maxRequestsBeforeStart} requests before RECORD or PLAY`);
          return;
        }
        this.#queue = this.#queue
          .then(() => (this.#closed ? undefined : this.#request(m)))
          .catch((e) => this.close(`request failed: ${(e as Error).message}`));
      }
    }
    // Answers pile up unsent (pipelined requests, never read): stop reading until they drain.
    if (!this.#closed && !this.#paused && this.socket.writableLength > TCP_HIGH_WATER) {
      this.#paused = true;
      this.socket.pause();
    }
  }

  /** Runs what a peer's packet triggers (depacketizing, publishing); a throw closes this connection only. */
  #guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.close(`${what} failed: ${(e as Error).message}`);
    }
  }

  #onInterleaved(channel: number, data: Buffer): void {
    const s = this.#session;
    if (!this.#publishing && !this.#reader) {
      this.#preStartBytes += data.length + 4;
      if (this.#preStartBytes > PRE_START_BYTES) this.close("interleaved data before RECORD or PLAY");
      return;
    }
    const to = this.#toStream;
    if (!s || !to) return; // a reader's RTCP receiver reports: liveness only
    for (const [i, t] of s.setup) {
      if (!t.tcp) continue;
      if (channel === t.tcp[0]) {
        const p = parseRtp(data);
        if (p) this.#guard("rtp", () => to.push(i, p));
      } else if (channel === t.tcp[1]) {
        const sr = parseSenderReport(data);
        if (sr) this.#guard("rtcp", () => to.report(i, sr));
      }
    }
  }

  #send(b: Buffer): void {
    if (!this.#closed) this.socket.write(b);
  }

  #reply(req: RtspRequest, status: number, headers: [string, string][] = [], body?: string): void {
    this.#send(response(status, req.headers.get("cseq"), headers, body));
  }

  #sessionHeader(s: Session): [string, string] {
    return ["Session", `${s.id};timeout=${Math.round(this.#o.limits.idleTimeoutMs / 1000)}`];
  }

  async #request(req: RtspRequest): Promise<void> {
    switch (req.method) {
      case "OPTIONS":
        this.#reply(req, 200, [["Public", PUBLIC]]);
        return;
      case "GET_PARAMETER":
      case "SET_PARAMETER":
        this.#reply(req, 200, this.#session ? [this.#sessionHeader(this.#session)] : []);
        return;
      case "DESCRIBE":
        return this.#describe(req);
      case "ANNOUNCE":
        return this.#announce(req);
      case "SETUP":
        return this.#setup(req);
      case "PLAY":
        return this.#play(req);
      case "RECORD":
        return this.#record(req);
      case "PAUSE":
        // A reader stops receiving until the next PLAY (which starts again at a keyframe); a publisher cannot pause.
        if (!this.#reader || !this.#session) {
          this.#reply(req, 455);
          return;
        }
        this.#reader.close();
        this.#reader = undefined;
        clearInterval(this.#srTimer);
        this.#reply(req, 200, [this.#sessionHeader(this.#session)]);
        return;
      case "TEARDOWN":
        this.#o.log.info("rtsp teardown", { path: this.#session?.path, remote: this.remote });
        this.#endSession();
        this.#reply(req, 200);
        return;
      default:
        this.#reply(req, 501, [["Public", PUBLIC]]);
    }
  }

  /** Publish or read permission for `path`; false: answered (401 with a challenge, or 403) and refused. */
  async #authorize(req: RtspRequest, action: "publish" | "read", path: string, query: string): Promise<boolean> {
    const auth = this.#o.auth;
    if (!auth || this.#authorized.has(`${action}:${path}`)) return true;
    const params = new URLSearchParams(query);
    const c = credential(
      req.headers.get("authorization"),
      req.method,
      this.#nonce,
      () => auth.keys.secrets(path),
      (uri) => sameResource(uri, req.url, path),
    );
    if (c.kind === "digest" && c.badUri) {
      this.#o.log.info("rtsp access denied", { action, path, remote: this.remote, reason: "digest uri mismatch" });
      this.#reply(req, 400, [["Reason", "Authorization uri does not match the request URL"]]);
      return false;
    }
    let key = params.get("key") ?? undefined;
    if (c.kind === "password") key = c.password;
    else if (c.kind === "digest") key = c.key ?? "(wrong digest)";
    const d = await auth.check({ action, path, protocol: this.#o.protocol, ip: this.#ip, key, query: params });
    if (this.#closed) return false;
    if (d.ok) {
      this.#authorized.add(`${action}:${path}`);
      return true;
    }
    this.#o.log.info("rtsp access denied", { action, path, remote: this.remote, reason: d.reason });
    this.#reply(req, 401, challenges(this.#nonce));
    return false;
  }

  #target(req: RtspRequest): { path: string; query: string } | undefined {
    const t = splitUrl(req.url);
    if (!t || !validPath(t.rest)) {
      this.#reply(req, 400);
      return undefined;
    }
    return { path: t.rest, query: t.query };
  }

  async #describe(req: RtspRequest): Promise<void> {
    const t = this.#target(req);
    if (!t || !(await this.#authorize(req, "read", t.path, t.query))) return;
    const stream = this.#o.hub.get(t.path);
    const tracks = stream ? streamTracks(stream) : [];
    if (!stream || tracks.length === 0) {
      this.#reply(req, 404);
      return;
    }
    if (this.#session && (this.#publishing || this.#reader)) {
      this.#reply(req, 455);
      return;
    }
    this.#endSession();
    const base = req.url.replace(/\/+$/, "");
    this.#session = {
      id: randomBytes(8).toString("hex"),
      path: t.path,
      mode: "read",
      announced: [],
      offered: tracks,
      base,
      setup: new Map(),
      transport: undefined,
    };
    const sdp = buildSdp({
      origin: this.socket.localAddress ?? "0.0.0.0",
      name: t.path,
      tracks: tracks.map((x) => x.sdp),
    });
    this.#reply(
      req,
      200,
      [
        ["Content-Base", `${base}/`],
        ["Content-Type", "application/sdp"],
      ],
      sdp,
    );
  }

  async #announce(req: RtspRequest): Promise<void> {
    const t = this.#target(req);
    if (!t || !(await this.#authorize(req, "publish", t.path, t.query))) return;
    if (this.#publishing || this.#reader) {
      this.#reply(req, 455);
      return;
    }
    if (!/application\/sdp/i.test(req.headers.get("content-type") ?? "")) {
      this.#reply(req, 415);
      return;
    }
    const tracks = parseSdp(req.body.toString("utf8"));
    try {
      checkTracks(tracks);
    } catch (e) {
      this.#o.log.warn("rtsp announce refused", { path: t.path, remote: this.remote, reason: (e as Error).message });
      this.#reply(req, 415, [["Reason", (e as Error).message]]);
      return;
    }
    const busy = this.#o.hub.get(t.path);
    if (busy) {
      this.#reply(req, 400, [["Reason", `path '${t.path}' already has a publisher`]]);
      return;
    }
    this.#endSession();
    this.#session = {
      id: randomBytes(8).toString("hex"),
      path: t.path,
      mode: "publish",
      announced: tracks,
      offered: [],
      base: req.url.replace(/\/+$/, ""),
      setup: new Map(),
      transport: undefined,
    };
    this.#reply(req, 200);
  }

  /** The track a SETUP URL names: by its control (relative or absolute); a single track also by the base URL. */
  #trackOf(req: RtspRequest, s: Session): number | undefined {
    const controls = s.mode === "publish" ? s.announced.map((t) => t.control) : s.offered.map((t) => t.sdp.control);
    const url = splitUrl(req.url);
    for (const [i, c] of controls.entries()) {
      if (!c) continue;
      if (/^rtsps?:/i.test(c) ? req.url === c : url && url.rest === `${s.path}/${c}`) return i;
    }
    if (url && url.rest === s.path && controls.length === 1) return 0;
    return undefined;
  }

  async #setup(req: RtspRequest): Promise<void> {
    let s = this.#session;
    const sid = req.headers.get("session")?.split(";")[0];
    if (sid && s?.id !== sid) {
      this.#reply(req, 454);
      return;
    }
    if (!s) {
      // A reader that skipped DESCRIBE (it knows the tracks): describe it now.
      const url = splitUrl(req.url);
      const path = url?.rest.replace(/\/trackID=\d+$/, "");
      const stream = path && validPath(path) ? this.#o.hub.get(path) : undefined;
      if (!path || !url || !stream) {
        this.#reply(req, 404);
        return;
      }
      if (!(await this.#authorize(req, "read", path, url.query))) return;
      s = {
        id: randomBytes(8).toString("hex"),
        path,
        mode: "read",
        announced: [],
        offered: streamTracks(stream),
        base: req.url.replace(/\/trackID=\d+$/, ""),
        setup: new Map(),
        transport: undefined,
      };
      this.#session = s;
    }
    if (this.#publishing || this.#reader) {
      this.#reply(req, 455);
      return;
    }
    const i = this.#trackOf(req, s);
    if (i === undefined) {
      this.#reply(req, 404);
      return;
    }
    const tr = parseTransport(req.headers.get("transport"));
    if (!tr || tr.multicast || (s.transport && s.transport !== (tr.tcp ? "tcp" : "udp"))) {
      this.#reply(req, 461);
      return;
    }
    const answer = await this.#transport(req, s, i, tr);
    if (!answer) return;
    s.transport = tr.tcp ? "tcp" : "udp";
    this.#reply(req, 200, [["Transport", answer], this.#sessionHeader(s)]);
  }

  async #transport(req: RtspRequest, s: Session, i: number, tr: Transport): Promise<string | undefined> {
    const old = s.setup.get(i);
    old?.udp?.pair.close();
    const mode = s.mode === "publish" ? ";mode=record" : "";
    if (tr.tcp) {
      const ch: [number, number] = tr.interleaved ?? [i * 2, i * 2 + 1];
      s.setup.set(i, { tcp: ch });
      return `RTP/AVP/TCP;unicast;interleaved=${ch[0]}-${ch[1]}${mode}`;
    }
    if (!this.#o.udp || !tr.clientPort) {
      this.#reply(req, 461);
      return undefined;
    }
    const pair = await this.#o.udp.open(this.#udpHolder);
    if (this.#closed || this.#session !== s) {
      pair?.close();
      return undefined;
    }
    if (!pair) {
      // The pool is full and this address holds its share: 461 makes clients (ffmpeg, GStreamer, VLC) retry
      // over TCP-interleaved.
      this.#reply(req, 461, [["Reason", "no UDP ports free for this client address; use TCP"]]);
      return undefined;
    }
    const client = tr.clientPort;
    s.setup.set(i, { udp: { pair, client } });
    const rtpFrom = new UdpSource(this.#ip, client[0]);
    const rtcpFrom = new UdpSource(this.#ip, client[1]);
    pair.rtp.on("message", (msg, rinfo) => {
      if (!rtpFrom.accepts(rinfo.address, rinfo.port)) return;
      this.#lastActivity = Date.now();
      const to = this.#toStream;
      const p = to ? parseRtp(msg) : undefined;
      if (to && p) this.#guard("rtp", () => to.push(i, p));
    });
    pair.rtcp.on("message", (msg, rinfo) => {
      if (!rtcpFrom.accepts(rinfo.address, rinfo.port)) return;
      this.#lastActivity = Date.now();
      const to = this.#toStream;
      const sr = to ? parseSenderReport(msg) : undefined;
      if (to && sr) this.#guard("rtcp", () => to.report(i, sr));
    });
    return `RTP/AVP;unicast;client_port=${client[0]}-${client[1]};server_port=${pair.port}-${pair.port + 1}${mode}`;
  }

  #record(req: RtspRequest): void {
    const s = this.#session;
    if (s?.mode !== "publish" || req.headers.get("session")?.split(";")[0] !== s.id) {
      this.#reply(req, s ? 454 : 455);
      return;
    }
    if (this.#publishing || s.setup.size === 0) {
      this.#reply(req, 455);
      return;
    }
    // Only the tracks that were set up are published.
    const tracks = s.announced.map((t, i) => (s.setup.has(i) ? t : undefined));
    let stream: MediaStream;
    try {
      stream = this.#o.hub.publish(s.path, { protocol: this.#o.protocol, remote: this.remote, since: Date.now() });
    } catch (e) {
      const why = isAmiError(e) ? e.message : "publish refused";
      this.#o.log.warn("rtsp publish refused", { path: s.path, remote: this.remote, reason: why });
      this.#reply(req, 400, [["Reason", why]]);
      return;
    }
    try {
      const used = tracks.filter((t): t is SdpTrack => t !== undefined);
      const ts = new RtspToStream(stream, used);
      // Packets are pushed by the SDP index; map it to the index among the set-up tracks.
      const index = tracks.map((t) => (t ? used.indexOf(t) : -1));
      this.#toStream = {
        push: (i, p) => ts.push(index[i] ?? -1, p),
        report: (i, sr) => ts.report(index[i] ?? -1, sr),
      };
    } catch (e) {
      stream.end();
      this.#reply(req, 415, [["Reason", (e as Error).message]]);
      return;
    }
    this.#publishing = stream;
    this.#started();
    this.#o.log.info("rtsp publish", { path: s.path, remote: this.remote, transport: s.transport });
    this.#reply(req, 200, [this.#sessionHeader(s)]);
  }

  #play(req: RtspRequest): void {
    const s = this.#session;
    if (s?.mode !== "read" || req.headers.get("session")?.split(";")[0] !== s.id) {
      this.#reply(req, s ? 454 : 455);
      return;
    }
    if (this.#reader) {
      this.#reply(req, 200, [this.#sessionHeader(s)]); // a PLAY while playing (resume): nothing to do
      return;
    }
    const stream = this.#o.hub.get(s.path);
    if (!stream || s.setup.size === 0) {
      this.#reply(req, stream ? 455 : 404);
      return;
    }
    const setup = s.setup;
    const tcpOut = (i: number, second: boolean, packet: Buffer): boolean => {
      const t = setup.get(i);
      if (t?.tcp) {
        if (this.#closed) return true;
        this.socket.write(interleaved(second ? t.tcp[1] : t.tcp[0], packet));
        return this.socket.writableLength < TCP_HIGH_WATER;
      }
      if (t?.udp) (second ? t.udp.pair.rtcp : t.udp.pair.rtp).send(packet, t.udp.client[second ? 1 : 0], this.#ip);
      return true;
    };
    const sender = new RtpSender(s.offered, new Set(setup.keys()), {
      rtp: (i, p) => tcpOut(i, false, p),
      rtcp: (i, p) => {
        tcpOut(i, true, p);
      },
      drained: () =>
        this.#closed || this.socket.writableLength < TCP_HIGH_WATER ? Promise.resolve() : drainedOrClosed(this.socket),
    });
    const reader = stream.addReader(this.#o.protocol, this.remote);
    this.#reader = reader;
    this.#started();
    this.#o.log.info("rtsp play", { path: s.path, remote: this.remote, transport: s.transport });
    this.#reply(req, 200, [this.#sessionHeader(s), ["Range", "npt=0.000-"], ["RTP-Info", sender.rtpInfo(s.base)]]);
    this.#srTimer = setInterval(() => this.#guard("sender report", () => sender.reports()), 1000);
    void this.#pump(reader, sender);
  }

  async #pump(reader: Reader, sender: RtpSender): Promise<void> {
    try {
      for (;;) {
        const f = reader.poll() ?? (await reader.next());
        if (!f || this.#reader !== reader) break;
        const oversized = sender.oversizedAudio;
        await sender.frame(f);
        if (oversized === 0 && sender.oversizedAudio === 1)
          this.#o.log.warn("rtsp: AAC frames over 8191 bytes cannot be sent as AAC-hbr; dropped", {
            path: this.#session?.path,
            remote: this.remote,
          });
      }
    } catch (e) {
      this.close(`play failed: ${(e as Error).message}`);
      return;
    }
    // The publisher left (not a TEARDOWN): the reader's connection ends with it.
    if (this.#reader === reader) this.close("the stream ended");
  }
}
