/**
 * The media HTTP server, on the kit's listener (never-throwing target parsing, timeouts, connection caps, an
 * error boundary per request): WHIP/WHEP, the service endpoints and /api, player pages, then
 * `/<stream path>/<file>` for HLS, LL-HLS, DASH and MPEG-TS HLS (`ts.m3u8`), and `/<stream path>.flv` for HTTP-FLV.
 * Recordings play back under `/_ami/playback/` (playback.ts: MediaMTX's list/get, and HLS VOD).
 *
 * CORS is decided here, once per route, before dispatch: what players read (playlists, segments, pages,
 * WHIP/WHEP) is `public`; /api and the service endpoints send no CORS header at all (they need the token and
 * name pull sources and restream destinations).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { AmiError } from "../../../core/errors.ts";
import { bearerMatches } from "../../../core/http/bearer.ts";
import { type CorsPolicy, corsHeaders } from "../../../core/http/cors.ts";
import type { FastAnswer, FastRequest } from "../../../core/http/fast.ts";
import { sendError } from "../../../core/http/reply.ts";
import { createHttpListener, type HttpListener, type ListenerStats } from "../../../core/http/server.ts";
import type { Target } from "../../../core/http/target.ts";
import type { Logger } from "../../../core/logger.ts";
import type { MasterSource, RenditionsSource } from "../../abr/master.ts";
import type { MediaAuth } from "../../auth/auth.ts";
import { readAllowed, webrtcAllowed } from "../../auth/http.ts";
import { MESH_MANIFEST, meshManifest } from "../../mesh/hashes.ts";
import type { MeshSignal } from "../../mesh/signal.ts";
import type { Outputs } from "../../outputs.ts";
import type { Playback } from "../../playback.ts";
import { type WebSource, webRoute } from "../../web/routes.ts";
import { WEBRTC_EXPOSE, type WebRtcServer } from "../webrtc/server.ts";
import { type ApiSource, apiRoute } from "./api.ts";
import { apiAllowed, CONTROL_PREFIXES, type ControlSource, controlRoute } from "./control.ts";
import { type FlvOptions, serveFlv } from "./flv.ts";
import { fastStreamFile, serveStreamFile, TIME_PATH } from "./hls.ts";
import { isTsFile, serveTsFile, type TsOptions } from "./hls-ts.ts";
import { PLAYBACK_PREFIX, servePlayback } from "./playback.ts";
import { reply } from "./reply.ts";
import { decodePath } from "./target-path.ts";

export interface HttpServerOptions {
  host: string;
  port: number;
  outputs: Outputs;
  /** `/<path>/master.m3u8` (ABR: source + renditions); none: that file is not served. */
  master?: MasterSource;
  /** `/<path>/master.mpd` (ABR: one MPD with the source's and the renditions' video); none: not served. */
  renditions?: RenditionsSource;
  api: ApiSource;
  control: ControlSource;
  log: Logger;
  /** Read permissions (media.paths, signed URLs, auth hook); none: everything is readable. */
  auth?: MediaAuth;
  /** Player pages (`/`, `/<path>/`). */
  web?: WebSource;
  /** HTTP-FLV (`/<path>.flv`); none: not served. */
  flv?: FlvOptions;
  /** WHIP/WHEP (`/<path>/whip`, `/<path>/whep` and their sessions); none: WebRTC is off. */
  webrtc?: WebRtcServer;
  /** Recordings (`/_ami/playback/list|get|index.m3u8`); none: not served. */
  playback?: Playback;
  /** MPEG-TS HLS (`/<path>/ts.m3u8`, `/<path>/ts<N>.ts`); none: not served. */
  mpegts?: TsOptions;
  /** The viewer mesh: signalling (WebSocket `/_ami/mesh`) and `/<path>/mesh.json`; none: off. */
  mesh?: MeshSignal;
}

const NO_UPGRADE_BODY = '{"errcode":"M_UNRECOGNIZED","error":"no upgrade here"}';
const NO_UPGRADE = `HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${NO_UPGRADE_BODY.length}\r\n\r\n${NO_UPGRADE_BODY}`;

type Area = "webrtc" | "api" | "service" | "public";

const SERVICE = new Set(["/health", "/metrics", "/_ami/stats"]);
const PLAYER_ASSETS = "/_ami/player/";

const CORS: Record<Area, CorsPolicy> = { webrtc: "public", api: "none", service: "none", public: "public" };
/** Each area's CORS headers, built once: the policies above name no origins, so they do not depend on the request. */
const CORS_HEADERS = Object.fromEntries(
  (Object.keys(CORS) as Area[]).map((a) => {
    const h = corsHeaders(CORS[a], undefined);
    return [a, Object.entries(a === "webrtc" ? { ...h, ...WEBRTC_EXPOSE } : h)];
  }),
) as Record<Area, [string, string][]>;

export class MediaHttpServer {
  readonly #listener: HttpListener;
  readonly #o: HttpServerOptions;
  port = 0;

  private constructor(o: HttpServerOptions) {
    this.#o = o;
    this.#listener = createHttpListener({
      name: "media http",
      log: o.log,
      handler: (req, res, t) => this.#handle(req, res, t),
      fast: (r) => this.#fast(r),
      upgrade: o.mesh
        ? (req, socket, head, t) => {
            if (o.mesh?.handles(t)) return o.mesh.upgrade(req, socket, head, t);
            socket.end(NO_UPGRADE);
          }
        : undefined,
    });
  }

  static async start(o: HttpServerOptions): Promise<MediaHttpServer> {
    const s = new MediaHttpServer(o);
    s.port = await s.#listener.listen(o.port, o.host);
    o.log.info("media http listening", { host: o.host, port: s.port });
    return s;
  }

  #area(t: Target): Area {
    const p = t.pathname;
    if (this.#o.webrtc?.handles(t)) return "webrtc";
    if (p === "/api" || p.startsWith("/api/")) return "api";
    const publicAmi = p.startsWith(PLAYER_ASSETS) || p.startsWith(PLAYBACK_PREFIX) || p === TIME_PATH;
    if (SERVICE.has(p) || (p.startsWith("/_ami/") && !publicAmi)) return "service";
    return "public";
  }

  /**
   * The kit's fast path: `GET|HEAD /<stream path>/{stream.m3u8,index.m3u8,index.mpd}` on a path anyone may read,
   * answered from the playlist cache when `#route` would answer it at once (hls.ts `fastStreamFile`). These
   * files are in the public area (never WebRTC, /api, the service endpoints, player pages or playback), so their
   * CORS headers are the public ones. Anything else (undefined) takes `#route`.
   */
  #fast(r: FastRequest): FastAnswer {
    const o = this.#o;
    const p = r.path;
    const slash = p.lastIndexOf("/");
    const file = p.slice(slash + 1);
    if (file !== "stream.m3u8" && file !== "index.m3u8" && file !== "index.mpd") return undefined;
    if (slash <= 0 || p.startsWith("/api/") || p.startsWith("/_ami/")) return undefined;
    let path = p.slice(1, slash);
    if (path.includes("%")) {
      try {
        path = decodePath(path);
      } catch {
        return undefined;
      }
    }
    const out = o.outputs.get(path);
    // The query the fast path takes never has a signature (`sig`): a path anyone reads needs no check.
    if (!out || (o.auth !== undefined && !o.auth.readOpen(out.path))) return undefined;
    return fastStreamFile(r, out, o.outputs, file, CORS_HEADERS.public);
  }

  /** Expected failures (AmiError: bad input, 401/403/404) are answered here; anything else reaches the kit's boundary (logged, opaque 500). */
  async #handle(req: IncomingMessage, res: ServerResponse, t: Target): Promise<void> {
    try {
      await this.#route(req, res, t);
    } catch (e) {
      if (!(e instanceof AmiError)) throw e;
      sendError(res, e);
    }
  }

  async #route(req: IncomingMessage, res: ServerResponse, t: Target): Promise<void> {
    const o = this.#o;
    const area = this.#area(t);
    for (const [k, v] of CORS_HEADERS[area]) res.setHeader(k, v);

    if (area === "webrtc" && o.webrtc) {
      if (o.auth && !(await webrtcAllowed(req, res, t, o.auth))) return;
      return o.webrtc.handle(req, res, t);
    }
    if (req.method === "OPTIONS") {
      res.writeHead(204, CORS[area] === "public" ? { "access-control-max-age": "86400" } : {}).end();
      return;
    }
    if (area === "api") {
      const refused = apiAllowed(req, o.control);
      if (refused) throw refused;
      if (CONTROL_PREFIXES.some((p) => t.pathname === p || t.pathname.startsWith(`${p}/`)))
        return reply(res, await controlRoute(req, t, o.control));
    }
    if (req.method !== "GET" && req.method !== "HEAD")
      throw new AmiError("M_UNRECOGNIZED", `${req.method} is not allowed here`, {}, 405);
    if (area !== "public") {
      const api = apiRoute(t, o.api);
      if (api) return reply(res, api);
      throw new AmiError("M_UNRECOGNIZED", "unknown endpoint");
    }
    if (o.flv && t.pathname.endsWith(".flv")) return this.#flv(req, res, t, o.flv);
    // DASH players sync their clock here (UTCTiming http-iso): the time as ISO 8601 text.
    if (t.pathname === TIME_PATH)
      return reply(res, { status: 200, type: "text/plain", body: Buffer.from(new Date().toISOString()) });
    if (o.playback && t.pathname.startsWith(PLAYBACK_PREFIX)) {
      const playback = o.playback;
      // The control token (the ops' bearer) reads any recording; everyone else as the path's live reads.
      const token = o.control.token;
      const allowed = async (path: string) =>
        (!!token && bearerMatches(req.headers.authorization, token)) ||
        !o.auth ||
        readAllowed(req, res, t, path, o.auth, "playback");
      return servePlayback(req, res, t, { playback, allowed, log: o.log });
    }
    if (o.web) {
      // Synchronous unless it answers a player page behind a read check.
      const page = webRoute(req, res, t, o.web);
      if (page === true || (page !== false && (await page))) return;
    }
    const parts = t.pathname.split("/").filter(Boolean);
    const file = parts.pop() ?? "";
    const path = decodePath(parts.join("/"));
    const out = o.outputs.get(path);
    if (!out) throw new AmiError("M_NOT_FOUND", `no stream at '${path}'`);
    // A path anyone reads skips the check's promise chain (a signed URL still goes through it: its URIs are carried).
    const open = o.auth === undefined || (o.auth.readOpen(out.path) && !t.searchParams.has("sig"));
    if (!open && o.auth && !(await readAllowed(req, res, t, out.path, o.auth))) return;
    if (o.mesh && file === MESH_MANIFEST) {
      const body = meshManifest(out.packager.timeline);
      out.httpBytesOut += body.length;
      return reply(res, { status: 200, type: "application/json", body, cache: "no-cache" });
    }
    if (o.mpegts && isTsFile(file)) return serveTsFile(req, res, out, o.outputs, file, this.#listener.limits, o.mpegts);
    await serveStreamFile(req, res, t, out, o.outputs, file, this.#listener.limits, o.master, o.renditions);
  }

  /** `/<path>.flv`: the path's stream, also while its publisher is away within the grace (the reader waits). */
  async #flv(req: IncomingMessage, res: ServerResponse, t: Target, flv: FlvOptions): Promise<void> {
    const path = decodePath(t.pathname.slice(1, -".flv".length));
    const out = this.#o.outputs.get(path);
    const s = out?.stream;
    if (!s || (s.ended && Date.now() - (s.endedAt ?? 0) >= flv.graceMs))
      throw new AmiError("M_NOT_FOUND", `no stream at '${path}'`);
    if (this.#o.auth && !(await readAllowed(req, res, t, s.path, this.#o.auth, "flv"))) return;
    await serveFlv(req, res, s, this.#listener.limits, flv);
  }

  /** Connections, refusals, handler errors (5xx) and malformed requests, from the kit's listener. */
  get stats(): ListenerStats {
    return this.#listener.stats;
  }

  close(): Promise<void> {
    return this.#listener.close();
  }
}
