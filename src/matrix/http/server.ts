/** The homeserver's HTTP edge: routing, CORS, body limits, auth, rate limits, and errors as Matrix JSON. */
import type { IncomingMessage, ServerResponse } from "node:http";
import { Readable } from "node:stream";
import { AmiError, toAmiError } from "../../core/errors.ts";
import type { Homeserver } from "../hs.ts";
import { RateLimiter } from "./ratelimit.ts";
import { Router } from "./router.ts";
import type { MatrixRequest, Reply, Route } from "./types.ts";

const CORS = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
  "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization, Date",
} as const;

export function createHandler(hs: Homeserver, routes: Route[]) {
  const router = new Router();
  for (const r of routes) router.add(r);
  const { limits } = hs.config;
  const perUser = new RateLimiter(limits.perUser.perSecond, limits.perUser.burst);
  const perIp = new RateLimiter(limits.perIp.perSecond, limits.perIp.burst);

  return async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    let status = 500;
    try {
      const reply = await dispatch(req, res);
      status = reply.status ?? 200;
      send(res, reply);
    } catch (e) {
      const err = toAmiError(e);
      if (err.code === "M_UNKNOWN")
        hs.log.error("request failed", { path: req.url, err: String((e as Error)?.stack ?? e) });
      status = err.status;
      const headers: Record<string, string> = {};
      if (typeof err.extra.retry_after_ms === "number")
        headers["Retry-After"] = String(Math.ceil(err.extra.retry_after_ms / 1000));
      send(res, { status, json: err.toJSON(), headers });
    } finally {
      hs.metrics.observeRequest(status, performance.now() - started);
    }
  };

  async function dispatch(req: IncomingMessage, res: ServerResponse): Promise<Reply> {
    const url = new URL(req.url ?? "/", "http://x");
    const method = req.method ?? "GET";
    if (method === "OPTIONS") return { status: 200, json: {} };
    if (url.pathname === "/health") return { status: 200, body: "OK", headers: { "Content-Type": "text/plain" } };
    if (url.pathname === "/metrics")
      return { body: hs.metrics.prometheus(), headers: { "Content-Type": "text/plain; version=0.0.4" } };
    if (url.pathname === "/_ami/stats") return { json: hs.metrics.stats() };

    const m = router.match(method, url.pathname);
    if (m === null) throw new AmiError("M_UNRECOGNIZED", "Unrecognized request");
    if (m === "method") throw new AmiError("M_UNRECOGNIZED", "Unrecognized request method", {}, 405);
    const { route, params } = m;

    const ip = req.socket.remoteAddress ?? "?";
    const token = accessToken(req, url);
    let requester = null;
    if (route.auth !== "none" && token !== null) {
      requester = await hs.auth.authenticate(token, ip);
      if (!requester) throw new AmiError("M_UNKNOWN_TOKEN", "Unknown or expired access token", { soft_logout: false });
    }
    if (route.auth === "required" && !requester) throw new AmiError("M_MISSING_TOKEN", "Missing access token");

    if (route.rateLimit && !(requester?.isAdmin && limits.exemptAdmins)) {
      const wait = requester ? perUser.take(requester.userId) : perIp.take(ip);
      if (wait > 0) throw new AmiError("M_LIMIT_EXCEEDED", "Too many requests", { retry_after_ms: wait });
    }

    const mode = route.body ?? (method === "POST" || method === "PUT" ? "json" : "none");
    let body: any;
    let raw: Buffer | undefined;
    if (mode === "raw") {
      raw = await readBody(req, route.maxBodyBytes ?? hs.config.media.maxUploadBytes);
    } else if (mode === "json") {
      const buf = await readBody(req, limits.maxJsonBodyBytes);
      body = parseJsonObject(buf);
    } else {
      req.resume();
    }

    const ac = new AbortController();
    // Only a client that went away before the answer aborts; creating the abort reason costs CPU otherwise.
    res.once("close", () => {
      if (!res.writableFinished) ac.abort();
    });
    const mreq: MatrixRequest = {
      hs,
      method,
      path: url.pathname,
      params,
      query: url.searchParams,
      body,
      raw,
      headers: req.headers,
      ip,
      requester,
      signal: ac.signal,
    };
    return route.handler(mreq);
  }
}

function accessToken(req: IncomingMessage, url: URL): string | null {
  const h = req.headers.authorization;
  if (h) {
    const m = /^Bearer\s+(\S+)$/i.exec(h);
    if (!m) throw new AmiError("M_MISSING_TOKEN", "Malformed Authorization header");
    return m[1];
  }
  return url.searchParams.get("access_token");
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"] ?? NaN);
  if (declared > limit) {
    req.resume();
    return Promise.reject(new AmiError("M_TOO_LARGE", `Request body exceeds ${limit} bytes`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.removeAllListeners("data");
        req.resume();
        reject(new AmiError("M_TOO_LARGE", `Request body exceeds ${limit} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", () => reject(new AmiError("M_UNKNOWN", "Request body aborted", {}, 400)));
  });
}

function parseJsonObject(buf: Buffer): Record<string, any> {
  if (buf.length === 0) return {};
  let v: unknown;
  try {
    v = JSON.parse(buf.toString("utf8"));
  } catch {
    throw new AmiError("M_NOT_JSON", "Content not JSON.");
  }
  if (v === null || typeof v !== "object" || Array.isArray(v))
    throw new AmiError("M_BAD_JSON", "Request body must be a JSON object");
  if (depthExceeds(v, MAX_JSON_DEPTH))
    throw new AmiError("M_BAD_JSON", `JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
  return v as Record<string, any>;
}

/** Deeper bodies are refused: everything downstream (canonical JSON, storage) walks them recursively. */
const MAX_JSON_DEPTH = 100;

/** Iterative (no recursion, so no stack overflow on hostile input). */
function depthExceeds(root: object, max: number): boolean {
  const stack: Array<[unknown, number]> = [[root, 1]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (d > max) return true;
    if (v && typeof v === "object")
      for (const c of Object.values(v)) if (c && typeof c === "object") stack.push([c, d + 1]);
  }
  return false;
}

function send(res: ServerResponse, reply: Reply): void {
  if (res.headersSent || res.destroyed) return;
  const status = reply.status ?? 200;
  if ("json" in reply) {
    const text = JSON.stringify(reply.json);
    res.writeHead(status, {
      ...CORS,
      "Content-Type": "application/json",
      "Content-Length": Buffer.byteLength(text),
      ...reply.headers,
    });
    res.end(text);
    return;
  }
  res.writeHead(status, { ...CORS, ...reply.headers });
  if (reply.body instanceof Readable) {
    reply.body.on("error", () => res.destroy());
    reply.body.pipe(res);
  } else res.end(reply.body);
}
