/**
 * The hit path: answers from a stored object. `fastHit` builds a fresh whole-object hit as complete bytes for the
 * kit's raw-socket fast path (plain HTTP/1.1 only); `reply` answers through node's req/res (HTTP/1.1 or an HTTP/2
 * stream through the compat API) with 304, 206/416 or the whole object.
 */
import { type IncomingMessage, type ServerResponse, STATUS_CODES } from "node:http";
import type { FastRequest } from "../core/http/fast.ts";
import type { CdnConfig } from "./config.ts";
import { keyOf, normalisePath } from "./key.ts";
import type { EdgeFunctionSeam } from "./node.ts";
import { parseRange } from "./range.ts";
import { needsSignature, verifyTarget } from "./sign.ts";
import type { EdgeStats } from "./stats.ts";
import type { CachedObject, MemoryTier } from "./store.ts";
import { objectHeaders, responseExtras, varyMatchesHeaders } from "./wire.ts";

export interface HitHost {
  config: CdnConfig;
  stats: EdgeStats;
  tier: MemoryTier;
  via: string;
  functions: EdgeFunctionSeam | undefined;
}

export function fastHit(node: HitHost, r: FastRequest): Buffer | undefined {
  const h = r.headers;
  if (h.range || h["if-none-match"] || h["if-modified-since"] || h.cookie || h.authorization) return undefined;
  if (r.path === "/health" || r.path.startsWith("/_ami/")) return undefined;
  let target = r.path + r.search;
  if (needsSignature(node.config, r.path)) {
    const v = verifyTarget(node.config.signingSecret as string, target, Date.now());
    if (!v.ok) return undefined;
    target = v.target;
  }
  const url = normalisePath(target, node.config);
  const primary = keyOf(h.host, url);
  const simple = h["cache-control"] === undefined && h.pragma === undefined;
  for (const o of node.tier.lookup(primary)) {
    if (o.soft || !varyMatchesHeaders(o, h)) continue;
    const now = Date.now();
    if (simple && o.headers.vary === undefined) {
      // No request directives, no Vary: fresh is just "before expiry" (computed once per object).
      o.freshUntil ??= now + o.policy.timeToLive();
      if (now >= o.freshUntil) return undefined;
    } else {
      const ev = o.policy.evaluateRequest({ url, method: "GET", headers: h });
      if (!ev.response || ev.revalidation) return undefined;
    }
    node.stats.requests++;
    node.stats.hits++;
    // The answer's bytes change only with Age (whole seconds): built once per second per object.
    const sec = Math.floor(now / 1000);
    if (!o.wire || o.wireSec !== sec) {
      const headers = { ...objectHeaders(o), ...responseExtras("HIT", node.via) };
      let head = `HTTP/1.1 ${o.status} ${STATUS_CODES[o.status] ?? ""}\r\n`;
      for (const [k, v] of Object.entries(headers)) {
        if (k === "content-length") continue;
        for (const x of Array.isArray(v) ? v : [v]) head += `${k}: ${x}\r\n`;
      }
      head += `content-length: ${o.body.length}\r\naccept-ranges: bytes\r\n\r\n`;
      o.wire = Buffer.concat([Buffer.from(head, "latin1"), o.body]);
      o.wireSec = sec;
    }
    if (r.method === "HEAD") return o.wire.subarray(0, o.wire.length - o.body.length);
    node.stats.bytesServed += o.body.length;
    return o.wire;
  }
  return undefined;
}

/** Answers from a stored object: conditional (304), Range (206/416) or whole. */
export async function reply(
  h: HitHost,
  req: IncomingMessage,
  res: ServerResponse,
  o: CachedObject,
  state: string,
): Promise<void> {
  const headers = { ...objectHeaders(o), ...responseExtras(state, h.via) };
  const f = h.functions;
  if (f?.afterCache && (await f.afterCache(req, res, { status: o.status, headers, body: o.body }))) return;
  const etag = headers.etag;
  const inm = req.headers["if-none-match"];
  if (typeof inm === "string" && typeof etag === "string" && inm.split(/\s*,\s*/).includes(etag)) {
    h.stats.notModified++;
    delete headers["content-length"];
    res.writeHead(304, headers);
    res.end();
    return;
  }
  const range = req.headers.range;
  if (o.status === 200 && typeof range === "string") {
    const r = parseRange(range, o.body.length);
    if (r === "unsatisfiable") {
      res.writeHead(416, { ...headers, "content-range": `bytes */${o.body.length}`, "content-length": "0" });
      res.end();
      return;
    }
    if (r) {
      const part = o.body.subarray(r[0], r[1] + 1);
      res.writeHead(206, {
        ...headers,
        "content-range": `bytes ${r[0]}-${r[1]}/${o.body.length}`,
        "content-length": String(part.length),
      });
      h.stats.bytesServed += part.length;
      res.end(req.method === "HEAD" ? undefined : part);
      return;
    }
  }
  headers["content-length"] = String(o.body.length);
  headers["accept-ranges"] = "bytes";
  res.writeHead(o.status, headers);
  h.stats.bytesServed += o.body.length;
  res.end(req.method === "HEAD" ? undefined : o.body);
}
