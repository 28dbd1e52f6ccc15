/**
 * The node's own endpoints under `/_ami/` (never proxied): stats as JSON, Prometheus metrics, and purges (loopback
 * only, or the `purgeToken` bearer).
 */
import { timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { readJson } from "../core/http/body.ts";
import { sendJson } from "../core/http/reply.ts";
import type { CdnConfig } from "./config.ts";
import { metricsText } from "./stats.ts";
import type { PurgeRequest } from "./store.ts";

export interface AdminHost {
  config: CdnConfig;
  statsJson(): Record<string, number | string>;
  purge(p: PurgeRequest): number;
}

export async function control(h: AdminHost, req: IncomingMessage, res: ServerResponse, url: string): Promise<void> {
  if (url === "/_ami/stats") return sendJson(res, 200, h.statsJson());
  if (url === "/_ami/metrics") {
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
    res.end(metricsText(h.statsJson(), h.config.region));
    return;
  }
  if (url === "/_ami/purge" && req.method === "POST") {
    if (!mayPurge(h, req)) return sendJson(res, 403, { errcode: "M_FORBIDDEN", error: "purge not allowed" });
    const body = (await readJson(req, 1 << 20)) as PurgeRequest;
    const arr = (x: unknown) => Array.isArray(x) && x.every((s) => typeof s === "string" && s.length > 0);
    if (
      typeof body !== "object" ||
      body === null ||
      ![body.urls, body.prefixes, body.tags].every((x) => x === undefined || arr(x))
    )
      return sendJson(res, 400, {
        errcode: "AMI_INVALID_INPUT",
        error: "body must be { urls?: string[], prefixes?: string[], tags?: string[], soft?: boolean }",
      });
    const purged = h.purge({ ...body, soft: body.soft === true });
    return sendJson(res, 200, { region: h.config.region, purged, soft: body.soft === true });
  }
  sendJson(res, 404, { errcode: "M_NOT_FOUND", error: "no such control route" });
}

function mayPurge(node: AdminHost, req: IncomingMessage): boolean {
  const token = node.config.purgeToken;
  const h = req.headers.authorization ?? "";
  if (token) {
    const a = Buffer.from(h);
    const b = Buffer.from(`Bearer ${token}`);
    return a.length === b.length && timingSafeEqual(a, b);
  }
  const ra = req.socket.remoteAddress ?? "";
  return ra === "127.0.0.1" || ra === "::1" || ra === "::ffff:127.0.0.1";
}
