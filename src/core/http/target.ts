/**
 * Request-target parsing that never throws. `new URL(req.url, base)` reads `//host:port/...` as a
 * scheme-relative URL (so `//[` or `//x:99999` throw), and `decodeURIComponent('%ff')` throws: both took
 * services down. Here every target is resolved against a fixed origin and every decode has a fallback.
 */

export interface Target {
  /** The path exactly as sent (still percent-encoded); always starts with "/". */
  pathname: string;
  searchParams: URLSearchParams;
  /** The query string with its "?", or "". */
  search: string;
}

const ORIGIN = "http://target.invalid";

/**
 * Parses an origin-form (`/path?q`), absolute-form (`http://h/path`) or asterisk-form (`*`) request target.
 * Returns null for anything else (the caller answers 400).
 */
export function parseTarget(raw: string | undefined): Target | null {
  if (raw === undefined || raw === "") return null;
  if (raw === "*") return { pathname: "*", searchParams: new URLSearchParams(), search: "" };
  if (raw.length > 16_384) return null;
  // Control characters, spaces and NUL never belong in a target (node's parser refuses most; be sure).
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return null;
  }
  let url: URL;
  try {
    if (raw.startsWith("/")) url = new URL(ORIGIN + raw);
    else if (/^https?:\/\//i.test(raw)) {
      const abs = new URL(raw);
      url = new URL(ORIGIN + abs.pathname + abs.search);
    } else return null;
  } catch {
    return null;
  }
  return { pathname: url.pathname, searchParams: url.searchParams, search: url.search };
}

/** `decodeURIComponent` that answers null instead of throwing on malformed percent-encoding. */
export function safeDecode(s: string): string | null {
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}

/** The target as it may appear in a log line: the path only, never the query (it carries tokens and keys). */
export function loggablePath(raw: string | undefined): string {
  if (!raw) return "";
  const q = raw.indexOf("?");
  const path = q < 0 ? raw : `${raw.slice(0, q)}?…`;
  return path.length > 512 ? `${path.slice(0, 512)}…` : path;
}
