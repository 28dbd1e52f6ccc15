/**
 * The `web` service's HTTP server: the built chat client, `/config.json` (where the homeserver is), and the
 * endpoints every ami-streams service answers (`/health`, `/metrics`, `/_ami/stats`).
 */
import type { IncomingMessage, Server } from "node:http";
import { baseUrl } from "../core/http/address.ts";
import { createHttpListener } from "../core/http/server.ts";
import type { Logger } from "../core/logger.ts";
import { processMetrics } from "../core/metrics.ts";
import { staticFiles } from "./static.ts";

export interface WebServerOptions {
  host: string;
  port: number;
  /** Directory of the built app (web/chat/dist). */
  root: string;
  /** The homeserver's client-server base URL for a request (it may depend on the Host the browser used). */
  homeserverUrl: (req: IncomingMessage) => string;
  serverName: string;
  log: Logger;
}

export interface RunningWebServer {
  url: string;
  server: Server;
  close(): Promise<void>;
}

/*
 * The app talks to the homeserver on another origin (connect-src), shows media through blob: URLs and runs the
 * crypto WASM ('wasm-unsafe-eval'); nothing else is allowed, and the page may not be framed.
 */
const SECURITY_HEADERS = {
  "Content-Security-Policy":
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src *; img-src 'self' blob: data:; " +
    "media-src 'self' blob:; style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
  "Referrer-Policy": "no-referrer",
  "X-Frame-Options": "DENY",
};

export class WebMetrics {
  readonly startedAt = Date.now();
  readonly byStatus = new Map<number, number>();
  requests = 0;
  readonly #buckets = new Map<number, number>();

  observe(status: number): void {
    this.requests++;
    this.byStatus.set(status, (this.byStatus.get(status) ?? 0) + 1);
    const sec = Math.floor(Date.now() / 1000);
    this.#buckets.set(sec, (this.#buckets.get(sec) ?? 0) + 1);
    if (this.#buckets.size > 12) for (const k of this.#buckets.keys()) if (k < sec - 10) this.#buckets.delete(k);
  }

  /** Over the last 10 whole seconds. */
  perSecond(): number {
    const sec = Math.floor(Date.now() / 1000);
    let n = 0;
    for (const [k, v] of this.#buckets) if (k >= sec - 10 && k < sec) n += v;
    return n / 10;
  }

  stats(): Record<string, number> {
    return {
      requests_per_sec: this.perSecond(),
      requests_total: this.requests,
      uptime_s: Math.round((Date.now() - this.startedAt) / 1000),
    };
  }

  prometheus(): string {
    return [
      "# HELP ami_web_requests_total HTTP requests answered, by status.",
      "# TYPE ami_web_requests_total counter",
      ...[...this.byStatus].map(([s, n]) => `ami_web_requests_total{status="${s}"} ${n}`),
      ...processMetrics(),
      "",
    ].join("\n");
  }
}

export async function startWebServer(opts: WebServerOptions): Promise<RunningWebServer> {
  const files = staticFiles(opts.root, SECURITY_HEADERS);
  const metrics = new WebMetrics();

  // The kit answers malformed targets (400), slow or oversized headers (408/431) and turns a handler's throw
  // into a 500 that is logged; the handler only serves.
  const listener = createHttpListener({
    name: "web",
    log: opts.log,
    async handler(req, res, target) {
      res.once("finish", () => metrics.observe(res.statusCode));
      const json = (status: number, body: unknown, extra: Record<string, string> = {}) => {
        res.writeHead(status, { "Content-Type": "application/json", "Cache-Control": "no-store", ...extra });
        res.end(JSON.stringify(body));
      };
      const path = target.pathname;
      if (req.method !== "GET" && req.method !== "HEAD") {
        return json(405, { errcode: "M_UNRECOGNIZED", error: "method not allowed" }, { Allow: "GET, HEAD" });
      }
      if (path === "/health") return json(200, { ok: true });
      if (path === "/_ami/stats") return json(200, metrics.stats());
      if (path === "/metrics") {
        res.writeHead(200, { "Content-Type": "text/plain; version=0.0.4" });
        return res.end(metrics.prometheus());
      }
      if (path === "/config.json") {
        return json(200, { homeserverUrl: opts.homeserverUrl(req), serverName: opts.serverName });
      }
      if (await files.serve(req, res, path)) return;
      json(404, { errcode: "M_NOT_FOUND", error: "no such file" });
    },
  });
  const port = await listener.listen(opts.port, opts.host);
  const url = baseUrl("http", opts.host, port);
  opts.log.info("web client listening", { url, root: opts.root });
  return { url, server: listener.server, close: () => listener.close() };
}
