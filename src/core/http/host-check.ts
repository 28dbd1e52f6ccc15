/**
 * Host and Origin checks against DNS rebinding for loopback control surfaces (control API, MCP HTTP):
 * a page on evil.example that re-points its name to 127.0.0.1 sends `Host: evil.example`, and a browser
 * always sends its page's Origin on a cross-origin POST.
 */
import type { IncomingMessage } from "node:http";
import { isIP } from "node:net";
import { isWildcardHost } from "./address.ts";

const LOOPBACK_NAMES = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);

/** `host[:port]` → lower-case host without port (IPv6 literals keep their brackets). */
function hostOnly(hostHeader: string): string {
  const h = hostHeader.trim().toLowerCase();
  if (h.startsWith("[")) {
    const end = h.indexOf("]");
    return end < 0 ? h : h.slice(0, end + 1);
  }
  const colon = h.indexOf(":");
  return colon < 0 ? h : h.slice(0, colon);
}

/** Names this listener answers to: loopback names plus the bound host and any the operator adds. */
export function allowedHosts(bound: string, extra: readonly string[] = []): Set<string> {
  const s = new Set(LOOPBACK_NAMES);
  if (!isWildcardHost(bound)) s.add(bound.includes(":") && !bound.startsWith("[") ? `[${bound}]` : bound);
  for (const e of extra) s.add(e.toLowerCase());
  return s;
}

/**
 * An IP-literal Host cannot come from a rebinding page (its Host is the attacker's DNS name), so any IP literal
 * is accepted: a listener bound to a wildcard address stays reachable by address from other machines.
 */
function hostAllowed(host: string, allowed: Set<string>): boolean {
  const h = hostOnly(host);
  return allowed.has(h) || isIP(h.replace(/^\[|\]$/g, "")) !== 0;
}

/** Why the request is refused, or null when its Host and Origin are acceptable. */
export function rebindingRefusal(req: IncomingMessage, allowed: Set<string>): string | null {
  const host = req.headers.host;
  if (!host || !hostAllowed(host, allowed)) return "Host header not allowed";
  const origin = req.headers.origin;
  if (origin === undefined) return null;
  let o: URL;
  try {
    o = new URL(origin);
  } catch {
    return "Origin header not allowed";
  }
  if (!allowed.has(o.hostname.toLowerCase())) return "Origin header not allowed";
  return null;
}
