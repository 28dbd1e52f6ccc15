/**
 * Credentials in pull sources and restream destinations (camera passwords, third-party stream keys) are shown
 * redacted everywhere: /api answers, the `stream.*` ops, log lines and error messages. Only the saved state
 * (`state.json`) and the ffmpeg command line keep the real URL. Pure string work, no `new URL`: a malformed URL
 * must still be redacted, never throw, and never be re-encoded into something the operator does not recognise.
 * (Kept in the media tree for now; core's `redactUrl` may absorb it later.)
 */

export const MASK = "***";

/** Query parameters whose values are secrets (stream keys, signatures, SRT stream ids and passphrases). */
const SECRET_PARAMS = new Set([
  "key",
  "token",
  "sig",
  "signature",
  "streamid",
  "passphrase",
  "password",
  "passwd",
  "pass",
  "secret",
  "access_token",
  "auth",
]);

const URL_START = /^([a-z][a-z0-9+.-]*):\/\//i;

function paramName(raw: string): string {
  try {
    return decodeURIComponent(raw).toLowerCase();
  } catch {
    return raw.toLowerCase();
  }
}

function redactQuery(query: string): string {
  return query
    .split("&")
    .map((p) => {
      const eq = p.indexOf("=");
      if (eq < 0) return p;
      const name = p.slice(0, eq);
      return SECRET_PARAMS.has(paramName(name)) && eq < p.length - 1 ? `${name}=${MASK}` : p;
    })
    .join("&");
}

/**
 * `rtsp://user:pass@cam/x` → `rtsp://***@cam/x`; `rtmp://host/app/KEY` → `rtmp://host/app/***`;
 * `?streamid=…&passphrase=…&key=…&token=…&sig=…` values → `***`. Anything that is not a URL (a file path) is
 * returned as it is.
 */
export function redactUrl(u: string): string {
  const m = URL_START.exec(u);
  if (!m) return u;
  const scheme = m[1] as string;
  const rest = u.slice(m[0].length);
  // No fragment handling on purpose: an SRT stream id (`#!::r=…`) sits in the query and starts with '#'.
  const q = rest.indexOf("?");
  let pre = q < 0 ? rest : rest.slice(0, q);
  const query = q < 0 ? undefined : rest.slice(q + 1);
  // The last '@' before the query ends the user info, even when an unencoded password holds '/' or '@'.
  const at = pre.lastIndexOf("@");
  const userInfo = at >= 0;
  if (userInfo) pre = pre.slice(at + 1);
  const slash = pre.indexOf("/");
  const host = slash < 0 ? pre : pre.slice(0, slash);
  let path = slash < 0 ? "" : pre.slice(slash);
  // RTMP: /<app>/<stream key>; everything after the application is the key.
  if (/^rtmp[a-z]*$/i.test(scheme)) {
    const segs = path.split("/");
    if (segs.length > 2 && segs.slice(2).some((s) => s !== "")) path = `/${segs[1]}/${MASK}`;
  }
  return `${scheme}://${userInfo ? `${MASK}@` : ""}${host}${path}${query === undefined ? "" : `?${redactQuery(query)}`}`;
}

const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s'"<>]+/gi;
const PARAM_IN_TEXT =
  /\b(key|token|sig|signature|streamid|passphrase|password|passwd|pass|secret|access_token|auth)=(?!\*\*\*)[^\s&'"]+/gi;

/**
 * Every URL in free text (ffmpeg's last stderr line, an error message) redacted as `redactUrl` does, and any
 * stray `key=…`-style pair outside a URL.
 */
export function redactText(text: string): string {
  return text
    .replace(URL_IN_TEXT, (u) => {
      // Punctuation after a URL in prose ("…/KEY: Connection refused", "(rtsp://…)") is not part of it.
      const tail = /[:.,;)\]]+$/.exec(u)?.[0] ?? "";
      return redactUrl(u.slice(0, u.length - tail.length)) + tail;
    })
    .replace(PARAM_IN_TEXT, (_m, k: string) => `${k}=${MASK}`);
}
