/**
 * The homeserver's HTTP edge: routing, CORS, body limits, auth, rate limits, and errors as Matrix JSON.
 * Listening, target parsing, timeouts and connection caps are the HTTP kit's (core/http); this is its handler.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { Readable } from "node:stream";
import { AmiError, toAmiError } from "../../core/errors.ts";
import { bearerToken } from "../../core/http/bearer.ts";
import { bodyChunks, readJson } from "../../core/http/body.ts";
import { TrustedProxies } from "../../core/http/client-address.ts";
import { corsHeaders } from "../../core/http/cors.ts";
import { sendJson } from "../../core/http/reply.ts";
import { holdOpen, type ListenerLimits, type RequestHandler } from "../../core/http/server.ts";
import { loggablePath, type Target } from "../../core/http/target.ts";
import type { MatrixConfig } from "../config.ts";
import { isJsonObject, type JsonObject } from "../events/types.ts";
import type { Homeserver } from "../hs.ts";
import { assertNotSuspended } from "../service/moderation.ts";
import { Router } from "./router.ts";
import type { MatrixRequest, Reply, Route } from "./types.ts";

// The client-server API is readable from any page (the spec requires it; tokens are bearer headers).
const CORS = corsHeaders("public", undefined);

export function createHandler(hs: Homeserver, routes: Route[], listenerLimits: ListenerLimits): RequestHandler {
  const router = new Router();
  for (const r of routes) router.add(r);
  const { limits } = hs.config;
  // Shared by every worker when there are several (cluster/ratelimit.ts), this process's own buckets otherwise.
  const perUser = hs.cluster.rateLimiter("user", limits.perUser.perSecond, limits.perUser.burst);
  const perIp = hs.cluster.rateLimiter("ip", limits.perIp.perSecond, limits.perIp.burst);
  const proxies = new TrustedProxies(hs.config.trustedProxies);

  return async function handle(req: IncomingMessage, res: ServerResponse, target: Target): Promise<void> {
    const started = performance.now();
    let status = 500;
    try {
      const reply = await dispatch(req, res, target);
      status = reply.status ?? 200;
      send(res, reply);
    } catch (e) {
      const err = toAmiError(e);
      // 502/504 name another server's failure (a URL preview's page), not ours.
      if (err.code === "M_UNKNOWN" && err.status >= 500 && err.status !== 502 && err.status !== 504)
        hs.log.error("request failed", { path: loggablePath(req.url), err: String((e as Error)?.stack ?? e) });
      status = err.status;
      const headers: Record<string, string> = {};
      if (typeof err.extra.retry_after_ms === "number")
        headers["Retry-After"] = String(Math.ceil(err.extra.retry_after_ms / 1000));
      const body = err.toJSON();
      // The spec's M_RESOURCE_LIMIT_EXCEEDED (a full disk) names how to reach the administrators, when configured.
      if (err.code === "M_RESOURCE_LIMIT_EXCEEDED" && body.admin_contact === undefined) {
        const contact = adminContact(hs.config.support);
        if (contact) body.admin_contact = contact;
      }
      send(res, { status, json: body, headers });
    } finally {
      hs.metrics.observeRequest(status, performance.now() - started);
    }
  };

  async function dispatch(req: IncomingMessage, res: ServerResponse, url: Target): Promise<Reply> {
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

    const ip = proxies.clientOf(req);
    // Routes without token auth (federation's X-Matrix ones) leave the Authorization header to their handler.
    const token = route.auth === "none" ? null : accessToken(req, url);
    let requester = null;
    if (route.auth !== "none" && token !== null) {
      requester = await hs.auth.authenticate(token, ip, req.headers["user-agent"]);
      if (!requester) throw new AmiError("M_UNKNOWN_TOKEN", "Unknown or expired access token", { soft_logout: false });
      // Spec "Account locking": every request of a locked account is refused, its tokens kept (soft logout).
      if (requester.locked && !route.allowLocked)
        throw new AmiError("M_USER_LOCKED", "This account has been locked", { soft_logout: true });
    }
    if (route.auth === "required" && !requester) throw new AmiError("M_MISSING_TOKEN", "Missing access token");
    if (route.refuseSuspended) assertNotSuspended(requester);

    if (route.rateLimit && !(requester?.isAdmin && limits.exemptAdmins)) {
      let wait = requester ? perUser.take(requester.userId) : perIp.take(ip);
      if (typeof wait !== "number") wait = await wait;
      if (wait > 0) throw new AmiError("M_LIMIT_EXCEEDED", "Too many requests", { retry_after_ms: wait });
    }

    const mode = route.body ?? (method === "POST" || method === "PUT" ? "json" : "none");
    let body: JsonObject | undefined;
    let stream: AsyncIterable<Buffer> | undefined;
    if (mode === "stream") {
      // The handler consumes it chunk by chunk (uploads go to disk); the limit is enforced as it reads.
      stream = bodyChunks(req, route.maxBodyBytes ?? hs.config.media.maxUploadBytes);
    } else if (mode === "json") {
      const parsed = await readJson(req, limits.maxJsonBodyBytes);
      if (!isJsonObject(parsed)) throw new AmiError("M_BAD_JSON", "Request body must be a JSON object");
      body = parsed;
    } else {
      req.resume();
    }

    // Long-polls outlive the listener's idle timeout on purpose.
    if (route.holdsOpen) holdOpen(req, res, listenerLimits);
    const ac = new AbortController();
    // Only a client that went away before the answer aborts; creating the abort reason costs CPU otherwise.
    res.once("close", () => {
      if (!res.writableFinished) ac.abort();
    });
    const mreq: MatrixRequest = {
      hs,
      method,
      path: url.pathname,
      uri: url.pathname + url.search,
      params,
      query: url.searchParams,
      // Routes without a JSON body never read it.
      body: body as JsonObject,
      stream,
      headers: req.headers,
      ip,
      requester,
      signal: ac.signal,
    };
    return route.handler(mreq);
  }
}

function accessToken(req: IncomingMessage, url: Target): string | null {
  if (req.headers.authorization) {
    const t = bearerToken(req);
    if (t === null) throw new AmiError("M_MISSING_TOKEN", "Malformed Authorization header");
    return t;
  }
  return url.searchParams.get("access_token");
}

function send(res: ServerResponse, reply: Reply): void {
  if ("json" in reply) {
    // The kit's reply closes the connection when the body was left unread (refused upload, bad JSON).
    sendJson(res, reply.status ?? 200, reply.json, { ...CORS, ...reply.headers });
    return;
  }
  if (res.headersSent || res.destroyed) {
    if (reply.body instanceof Readable) reply.body.destroy();
    return;
  }
  res.writeHead(reply.status ?? 200, { ...CORS, ...reply.headers });
  if (reply.body instanceof Readable) {
    reply.body.on("error", () => res.destroy());
    reply.body.pipe(res);
  } else res.end(reply.body);
}

/** A URI for the server's administrators (matrix.support): the help page, else an admin's email or Matrix ID. */
export function adminContact(support: MatrixConfig["support"]): string | undefined {
  if (support.page) return support.page;
  const c = support.contacts.find((x) => x.role === "m.role.admin") ?? support.contacts[0];
  if (c?.email_address) return `mailto:${c.email_address}`;
  if (c?.matrix_id) return `https://matrix.to/#/${c.matrix_id}`;
  return undefined;
}
