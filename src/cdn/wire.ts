/**
 * Header rules shared by the hit path and the fill path: what is hop-by-hop, what goes upstream, request smuggling
 * checks, Vary matching, and the headers a stored object is answered with.
 */
import type { IncomingMessage } from "node:http";
import type { CachedObject } from "./store.ts";

/** Request headers passed upstream on cacheable requests (besides the ones the origin lists in Vary). */
export const FORWARDED = ["accept", "accept-encoding", "accept-language", "user-agent"];
export const HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "proxy-authenticate",
  "proxy-authorization",
]);

/** CL+TE, more than one Content-Length, or a Transfer-Encoding other than chunked: a smuggling attempt. */
export function smuggling(req: IncomingMessage): string | null {
  let cl = 0;
  let te = 0;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i].toLowerCase();
    if (n === "content-length") cl++;
    else if (n === "transfer-encoding") {
      te++;
      if (raw[i + 1].trim().toLowerCase() !== "chunked") return "unsupported Transfer-Encoding";
    }
  }
  if (cl > 1) return "duplicate Content-Length";
  if (te > 1) return "duplicate Transfer-Encoding";
  if (cl && te) return "both Content-Length and Transfer-Encoding";
  return null;
}

export function cleanHeaders(h: IncomingMessage["headers"]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !HOP.has(k)) out[k] = v;
  return out;
}

export function headerStrings(h: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (typeof v === "string") out[k] = v;
  return out;
}

/** The headers a 304 may update (RFC 9111 §4.3.4: all but the framing ones). */
export function pick304(h: Record<string, string | string[]>): Record<string, string | string[]> {
  const out = { ...h };
  delete out["content-length"];
  delete out["content-encoding"];
  delete out["content-type"];
  return out;
}

export function varyMatches(o: CachedObject, req: IncomingMessage): boolean {
  return varyMatchesHeaders(o, req.headers);
}

export function varyMatchesHeaders(o: CachedObject, headers: Record<string, string | string[] | undefined>): boolean {
  const v = o.headers.vary;
  if (typeof v !== "string") return true;
  const want = o.id.split("\n").slice(1);
  const names = v
    .toLowerCase()
    .split(/\s*,\s*/)
    .filter(Boolean);
  if (names.includes("*")) return false;
  return names.every((n, i) => want[i] === `${n}=${headers[n] ?? ""}`);
}

export function staleIfError(h: Record<string, string | string[]>, dflt: number): number {
  const cc = typeof h["cache-control"] === "string" ? h["cache-control"] : "";
  const m = /(?:^|,)\s*stale-if-error\s*=\s*"?(\d+)/i.exec(cc);
  return m ? Number(m[1]) : dflt;
}

/** A stored object's headers as answered (Age and the like from the policy), hop-by-hop ones dropped. */
export function objectHeaders(o: CachedObject): Record<string, string | string[]> {
  const h = { ...o.headers, ...(o.policy.responseHeaders() as Record<string, string | string[]>) };
  for (const k of HOP) delete h[k];
  return h;
}

/** The headers every answer of the node carries: its cache state and its Via. */
export function responseExtras(state: string, via: string): Record<string, string> {
  return { "x-cache": state, via };
}
