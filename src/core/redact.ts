/**
 * Secrets out of everything we show. Logs get copied into bug reports and chat, and media pull sources and restream
 * destinations (camera passwords, third-party stream keys) appear in /api answers, the `stream.*` ops, errors and
 * ffmpeg's stderr: every line our logger writes, every line the supervisor captures from a service and every such
 * URL or message passes through here. Masked: URL userinfo, RTMP stream keys, SRT stream ids and passphrases,
 * key/token/sig/password-style query values (in URLs and stray in text), Authorization and bearer values, JSON
 * fields that are secrets by name. Only media's saved state (`state.json`) and ffmpeg's own command line keep the
 * real URL. Pure string work, no `new URL`: log text holds partial and JSON-escaped URLs that URL() would refuse,
 * and a malformed URL must still be redacted, never throw, and never be re-encoded into something unrecognisable.
 */

export const MASK = "***";

/** Query parameters whose values are secrets in any URL (and in `name=value` pairs anywhere in text). */
const SECRET_PARAMS = [
  "access_token",
  "key",
  "token",
  "sig",
  "signature",
  "secret",
  "password",
  "passwd",
  "pass",
  "passphrase",
  "streamid",
  "auth",
];
const SECRET_PARAM_SET = new Set(SECRET_PARAMS);

/**
 * One character of a URL or a parameter value in text that may be JSON-escaped: a backslash pair (an escaped
 * backslash) belongs to it, a backslash before a JSON escape (`\"`, `\n`, `\u…`) ends it, so a scrubbed JSON log
 * line stays valid JSON; any other backslash is an ordinary character.
 */
const CHAR = String.raw`(?:[^\s"'<>\\]|\\\\|\\(?!["/bfnrtu]))`;
/** A URL with a scheme and an authority, up to whitespace, a quote, an angle bracket or a JSON escape. */
const URL_IN_TEXT = new RegExp(String.raw`\b[a-z][a-z0-9+.-]*:\/\/${CHAR}+`, "gi");
/**
 * `name=value` with a secret name anywhere (a request target without a scheme, `streamid=… passphrase=…` in an
 * error message, a fragment). The value runs to '&', whitespace, a quote or a JSON escape, as `CHAR` does: stream
 * ids (`#!::r=live/x,m=publish`) and passphrases may hold '#' and ','.
 */
const PARAM_IN_TEXT = new RegExp(
  String.raw`\b(${SECRET_PARAMS.join("|")})=(?:[^&\s"'\\]|\\\\|\\(?!["/bfnrtu]))+`,
  "gi",
);

const URL_START = /^([a-z][a-z0-9+.-]*):\/\//i;

function paramName(raw: string): string {
  try {
    return decodeURIComponent(raw).toLowerCase();
  } catch {
    return raw.toLowerCase();
  }
}

/** Stray `name=value` pairs with a secret name: the value becomes `***`. */
function scrubParams(s: string): string {
  return s.replace(PARAM_IN_TEXT, (_all, name: string) => `${name}=${MASK}`);
}

/** A query string (without '?'): a secret parameter's value, its name percent-decoded, becomes `***`. */
function redactQuery(query: string): string {
  const masked = query
    .split("&")
    .map((p) => {
      const eq = p.indexOf("=");
      if (eq < 0) return p;
      const name = p.slice(0, eq);
      return SECRET_PARAM_SET.has(paramName(name)) && eq < p.length - 1 ? `${name}=${MASK}` : p;
    })
    .join("&");
  // `?a=1#token=…`, `?x=1;key=…`: pairs the '&' split does not see.
  return scrubParams(masked);
}

/** A host with an optional numeric port: a name, an IPv4 address or a bracketed IPv6 literal. */
const HOST_AFTER_AT = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d*)?$/;

/**
 * One URL with its secrets masked: `rtsp://user:pass@cam/x` → `rtsp://***@cam/x`, `rtmp://host/app/KEY` →
 * `rtmp://host/app/***`, `?streamid=…&passphrase=…&key=…&token=…&sig=…` values → `***`. Anything that is not a URL
 * (a file path, a request target `/sync?access_token=…`) keeps all but its secret `name=value` pairs.
 */
export function redactUrl(u: string): string {
  const m = URL_START.exec(u);
  if (!m) return scrubParams(u);
  const scheme = m[1] as string;
  const rest = u.slice(m[0].length);
  // No fragment handling on purpose: an SRT stream id (`#!::r=…`) sits in the query and starts with '#'.
  const q = rest.indexOf("?");
  let pre = q < 0 ? rest : rest.slice(0, q);
  const query = q < 0 ? undefined : rest.slice(q + 1);
  // The last '@' before the query ends the user info, even when an unencoded password holds '/' or '@' — but
  // only when a host follows it: `http://hs/_matrix/client/v3/profile/@alice:hs` has a user ID in its path, not
  // user info (its host would otherwise vanish from the log). Else the RFC 3986 rule: '@' before the first '/'.
  let at = pre.lastIndexOf("@");
  if (at >= 0 && !HOST_AFTER_AT.test(pre.slice(at + 1).split("/", 1)[0] as string)) {
    const authority = pre.split("/", 1)[0] as string;
    at = authority.lastIndexOf("@");
  }
  const userInfo = at >= 0;
  if (userInfo) pre = pre.slice(at + 1);
  const slash = pre.indexOf("/");
  const host = slash < 0 ? pre : pre.slice(0, slash);
  let path = slash < 0 ? "" : pre.slice(slash);
  // RTMP (rtmp, rtmps, rtmpt, rtmpe, …): /<app>/<stream key>; everything after the application is the key.
  if (/^rtmp[a-z]*$/i.test(scheme)) {
    const segs = path.split("/");
    if (segs.length > 2 && segs.slice(2).some((s) => s !== "")) path = `/${segs[1]}/${MASK}`;
  }
  return `${scheme}://${userInfo ? `${MASK}@` : ""}${host}${path}${query === undefined ? "" : `?${redactQuery(query)}`}`;
}

const rules: Array<[RegExp, string]> = [
  // `Authorization: Basic …`, `"authorization":"Bearer …"`: the whole value (JSON escapes in it whole, so a
  // scrubbed JSON line stays valid).
  [/(authorization"?\s*[:=]\s*"?)(?:[^"\\\r\n]|\\.)+/gi, `$1${MASK}`],
  [/\b(bearer\s+)[A-Za-z0-9._~+/=-]+/gi, `$1${MASK}`],
  // JSON fields that are secrets by name.
  [/("(?:access_token|refresh_token|password|passwd|passphrase|secret|token)"\s*:\s*")(?:[^"\\]|\\.)*/gi, `$1${MASK}`],
];

/**
 * `s` (a log line, possibly JSON; an error message; ffmpeg's stderr) with every secret we know the shape of
 * replaced by `***`: every URL as `redactUrl` does, then header, bearer and JSON-field values, then stray secret
 * `name=value` pairs (request targets without a scheme, `streamid=… passphrase=…`).
 */
export function scrubText(s: string): string {
  let out = s.replace(URL_IN_TEXT, (u) => {
    // Punctuation after a URL in prose ("…/KEY: Connection refused", "(rtsp://…)") is not part of it.
    const tail = /[:.,;)\]]+$/.exec(u)?.[0] ?? "";
    return redactUrl(u.slice(0, u.length - tail.length)) + tail;
  });
  for (const [re, to] of rules) out = out.replace(re, to);
  return scrubParams(out);
}
