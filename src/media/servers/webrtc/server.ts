/**
 * WHIP (RFC 9725) and WHEP on the media HTTP server:
 *   POST   /<path>/whip        SDP offer -> 201 + SDP answer, Location /<path>/whip/<id>; publishes <path>
 *   POST   /<path>/whep        SDP offer -> 201 + SDP answer, Location /<path>/whep/<id>; plays <path>
 *   DELETE /<path>/whi[pe]p/<id>  ends the session
 * Trickle ICE (PATCH) is not offered: answers carry every candidate. Bad input answers 4xx and touches
 * nothing else.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { AmiError } from "../../../core/errors.ts";
import { readBody } from "../../../core/http/body.ts";
import type { Target } from "../../../core/http/target.ts";
import type { Logger } from "../../../core/logger.ts";
import { type Hub, type MediaStream, validPath } from "../../hub.ts";
import { OpusTranscoder } from "../../protocols/webrtc/opus-transcode.ts";
import { VideoCheck, type WebRtcVideoMode } from "../../protocols/webrtc/video-check.ts";
import { type ReencoderStatus, VideoReencoder } from "../../protocols/webrtc/video-transcode.ts";
import { decodePath } from "../http/target-path.ts";
import type { WebRtcOptions } from "./peer.ts";
import { startWhep, startWhip, type WebRtcSession } from "./sessions.ts";

/** WHIP/WHEP clients on other origins read the session's Location to end it (CORS is set by the HTTP server). */
export const WEBRTC_EXPOSE = { "Access-Control-Expose-Headers": "Location" } as const;

const MAX_OFFER_BYTES = 64 * 1024;

export interface WebRtcServerOptions extends WebRtcOptions {
  hub: Hub;
  log: Logger;
  ffmpegPath: string;
}

/** What WebRTC viewers of a path get (`stream status`): its video as it is, or re-encoded, and why. */
export interface WebRtcPathStatus {
  video: WebRtcVideoMode;
  reason: string;
  reencoder: ReencoderStatus | null;
}

export class WebRtcServer {
  readonly sessions = new Map<string, WebRtcSession>();
  /** AAC -> Opus per live stream; an entry lives as long as its stream. */
  readonly transcoders = new WeakMap<MediaStream, OpusTranscoder>();
  /** Per live stream: can its H.264 go to browsers as it is (B-frames, profile)? Watched from its publish on. */
  readonly videoChecks = new WeakMap<MediaStream, VideoCheck>();
  /** H.264 re-encoded for WebRTC viewers, per live stream that needs it; runs only while it has viewers. */
  readonly reencoders = new WeakMap<MediaStream, VideoReencoder>();
  /** WHIP publishers' keyframe requests (RTCP PLI), by path: a new WHEP viewer asks for an IDR to start on. */
  readonly keyframeRequests = new Map<string, () => void>();
  readonly #o: WebRtcServerOptions;

  constructor(o: WebRtcServerOptions) {
    this.#o = o;
    o.hub.on("publish", (s) => this.#check(s));
  }

  /** The path's video check (attached at publish; for a stream that predates this server, from now). */
  #check(stream: MediaStream): VideoCheck {
    let c = this.videoChecks.get(stream);
    if (!c) {
      c = VideoCheck.attach(stream);
      this.videoChecks.set(stream, c);
    }
    return c;
  }

  /** The path's shared re-encoder (created on first use, started by its first viewer). */
  readonly #reencoder = (stream: MediaStream): VideoReencoder => {
    let r = this.reencoders.get(stream);
    if (!r) {
      r = new VideoReencoder(stream, this.#check(stream), this.#o.ffmpegPath, this.#o.log);
      this.reencoders.set(stream, r);
    }
    return r;
  };

  status(stream: MediaStream): WebRtcPathStatus {
    const v = this.#check(stream).verdict();
    return { video: v.mode, reason: v.reason, reencoder: this.reencoders.get(stream)?.status() ?? null };
  }

  /** `/<path>/whip`, `/<path>/whep` and their session resources. */
  handles(url: Target): boolean {
    // Every such path has a `/whip` or `/whep` segment; most requests (playlists, segments) are out at once.
    if (!url.pathname.includes("/whip") && !url.pathname.includes("/whep")) return false;
    const parts = url.pathname.split("/").filter(Boolean);
    return isKind(parts.at(-1)) || (parts.length >= 3 && isKind(parts.at(-2)) && UUID.test(parts.at(-1) ?? ""));
  }

  /** Answers the request; bad input throws AmiErrors (4xx), rendered by the HTTP server's one error renderer. */
  async handle(req: IncomingMessage, res: ServerResponse, url: Target): Promise<void> {
    const parts = url.pathname.split("/").filter(Boolean);
    if (req.method === "OPTIONS") {
      res.writeHead(204, { "accept-post": "application/sdp", "access-control-max-age": "86400" }).end();
      return;
    }
    if (isKind(parts.at(-1))) {
      if (req.method !== "POST") throw new AmiError("M_UNRECOGNIZED", "use POST with an SDP offer", {}, 405);
      const kind = parts.pop() as "whip" | "whep";
      const path = decodePath(parts.join("/"));
      if (!validPath(path)) throw new AmiError("AMI_INVALID_INPUT", `invalid stream path '${path}'`);
      const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
      if (type !== "application/sdp")
        throw new AmiError("AMI_INVALID_INPUT", `content-type must be application/sdp, not '${type || "(none)"}'`);
      // Bounded: a larger body is refused with 413 before it is read (declared) or as soon as it passes the limit.
      const offer = (await readBody(req, MAX_OFFER_BYTES)).toString("utf8");
      const id = randomUUID();
      const remote = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
      const ctx = {
        ...this.#o,
        path,
        remote,
        onClose: () => this.sessions.delete(id),
        opus: this.#opus,
        videoCheck: (s: MediaStream) => this.#check(s),
        reencoder: this.#reencoder,
        keyframeRequests: this.keyframeRequests,
      };
      const { session, sdp } = kind === "whip" ? await startWhip(ctx, offer) : await startWhep(ctx, offer);
      this.sessions.set(id, session);
      // The path as the client sent it (still percent-encoded).
      res.writeHead(201, { "content-type": "application/sdp", location: `/${parts.join("/")}/${kind}/${id}` });
      res.end(sdp);
      return;
    }
    const id = parts.at(-1) as string;
    if (req.method !== "DELETE") throw new AmiError("M_UNRECOGNIZED", "trickle ICE is not supported", {}, 405);
    const s = this.sessions.get(id);
    if (!s) throw new AmiError("M_NOT_FOUND", `no WebRTC session '${id}'`);
    await s.close();
    res.writeHead(200, { "content-type": "text/plain", "content-length": 0 }).end();
  }

  readonly #opus = (stream: MediaStream): OpusTranscoder => {
    let t = this.transcoders.get(stream);
    if (!t) {
      t = new OpusTranscoder(stream, this.#o.ffmpegPath, this.#o.log);
      this.transcoders.set(stream, t);
    }
    return t;
  };

  async close(): Promise<void> {
    await Promise.all([...this.sessions.values()].map((s) => s.close()));
    this.sessions.clear();
  }
}

/** Session ids: a stream path may itself end in `whip` (`/live/whip/index.m3u8` is HLS, not a session). */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const isKind = (s: string | undefined): boolean => s === "whip" || s === "whep";
