/** The media HTTP server: service endpoints, then `/<stream path>/<file>` for HLS, LL-HLS and DASH. */
import type { Server } from "node:http";
import type { Logger } from "../../../core/logger.ts";
import { createServer } from "../../../core/node-http.ts";
import type { MasterSource } from "../../abr/master.ts";
import type { MediaAuth } from "../../auth/auth.ts";
import { readAllowed, webrtcAllowed } from "../../auth/http.ts";
import type { Outputs } from "../../outputs.ts";
import { type WebSource, webRoute } from "../../web/routes.ts";
import type { WebRtcServer } from "../webrtc/server.ts";
import { type ApiSource, apiRoute } from "./api.ts";
import { CONTROL_PREFIXES, type ControlSource, controlRoute } from "./control.ts";
import { serveStreamFile } from "./hls.ts";
import { CORS, json, reply } from "./reply.ts";

export interface HttpServerOptions {
  host: string;
  port: number;
  outputs: Outputs;
  /** `/<path>/master.m3u8` (ABR: source + renditions); none: that file is not served. */
  master?: MasterSource;
  api: ApiSource;
  control: ControlSource;
  log: Logger;
  /** Read permissions (media.paths, signed URLs, auth hook); none: everything is readable. */
  auth?: MediaAuth;
  /** Player pages (`/`, `/<path>/`). */
  web?: WebSource;
  /** WHIP/WHEP (`/<path>/whip`, `/<path>/whep` and their sessions); none: WebRTC is off. */
  webrtc?: WebRtcServer;
}

export class MediaHttpServer {
  readonly #server: Server;
  port = 0;

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(o: HttpServerOptions): Promise<MediaHttpServer> {
    const server = createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://media");
      if (o.webrtc?.handles(url)) {
        const webrtc = o.webrtc;
        if (!o.auth) return webrtc.handle(req, res, url);
        webrtcAllowed(req, res, url, o.auth).then(
          (ok) => (ok ? webrtc.handle(req, res, url) : undefined),
          () => reply(res, json(500, { errcode: "M_UNKNOWN", error: "internal error" })),
        );
        return;
      }
      if (req.method === "OPTIONS") {
        res.writeHead(204, { ...CORS, "access-control-max-age": "86400" }).end();
        return;
      }
      if (CONTROL_PREFIXES.some((p) => url.pathname === p || url.pathname.startsWith(`${p}/`))) {
        controlRoute(req, url, o.control).then((r) => reply(res, r));
        return;
      }
      if (req.method !== "GET" && req.method !== "HEAD") return reply(res, json(405, { error: "method not allowed" }));
      if (o.web && webRoute(req, res, url, o.web)) return;
      const api = apiRoute(url.pathname, o.api);
      if (api) return reply(res, api);
      const parts = url.pathname.split("/").filter(Boolean);
      const file = parts.pop() ?? "";
      const out = o.outputs.get(parts.join("/"));
      if (!out) return reply(res, json(404, { errcode: "M_NOT_FOUND", error: `no stream at '${parts.join("/")}'` }));
      const allowed = o.auth ? readAllowed(req, res, url, out.path, o.auth) : Promise.resolve(true);
      allowed
        .then((ok) => (ok ? serveStreamFile(req, res, url, out, o.outputs, file, o.master) : undefined))
        .catch((e) => {
          o.log.error("http handler failed", { url: req.url, error: (e as Error).message });
          reply(res, json(500, { errcode: "M_UNKNOWN", error: "internal error" }));
        });
    });
    server.keepAliveTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(o.port, o.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    const s = new MediaHttpServer(server);
    const addr = server.address();
    s.port = typeof addr === "object" && addr ? addr.port : o.port;
    o.log.info("media http listening", { host: o.host, port: s.port });
    return s;
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((r) => this.#server.close(() => r()));
  }
}
