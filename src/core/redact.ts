/**
 * Secrets out of log text. Logs get copied into bug reports and chat, so every line our logger writes and every
 * line the supervisor captures from a service passes through scrubText: access tokens, Authorization values,
 * bearer tokens, URL userinfo, RTMP stream keys, SRT stream ids and passphrases, key/token/sig query values.
 * Pure string work, no URL parsing: log text holds partial and JSON-escaped URLs that URL() would refuse.
 */

const MASK = "***";

/** Query parameters whose values are secrets in any URL. */
const SECRET_PARAMS = "access_token|key|token|sig|signature|secret|password|passphrase|streamid";
/** streamid (`#!::r=live/x,m=publish`) and passphrase may hold '#' and ',': only '&' ends them. */
const queryParam = new RegExp(
  `([?&;])(${SECRET_PARAMS})=(?:(?<=(?:streamid|passphrase)=)[^&\\s"'\\\\]*|[^&#\\s"'\\\\]*)`,
  "gi",
);

/** A URL with a scheme and an authority, up to whitespace, a quote or an angle bracket. */
const urlPattern = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>\\]+/gi;

/**
 * One URL with its secrets masked: `rtmp://user:pass@host/app/key?token=x` → `rtmp://***@host/app/***?token=***`.
 * RTMP(S) URLs carry the stream key as the path segment after the app, so a path of two or more segments loses its
 * last one.
 */
export function redactUrl(u: string): string {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)(.*)$/is.exec(u);
  if (!m) return scrubQuery(u);
  const [, scheme, authority, rest] = m;
  const at = authority.lastIndexOf("@");
  const host = at >= 0 ? `${MASK}@${authority.slice(at + 1)}` : authority;
  const q = rest.search(/[?#]/);
  let path = q >= 0 ? rest.slice(0, q) : rest;
  const tail = q >= 0 ? rest.slice(q) : "";
  if (/^rtmps?:\/\/$/i.test(scheme)) {
    const segs = path.split("/");
    const last = segs.findLastIndex((s) => s !== "");
    if (segs.filter((s) => s !== "").length >= 2 && last >= 0) {
      segs[last] = MASK;
      path = segs.join("/");
    }
  }
  return scheme + host + path + scrubQuery(tail);
}

function scrubQuery(s: string): string {
  return s.replace(queryParam, (_all, sep: string, name: string) => `${sep}${name}=${MASK}`);
}

const rules: Array<[RegExp, string | ((...a: string[]) => string)]> = [
  // `Authorization: Basic …`, `"authorization":"Bearer …"`: the whole value.
  [/(authorization"?\s*[:=]\s*"?)[^"\r\n]+/gi, `$1${MASK}`],
  [/\b(bearer\s+)[A-Za-z0-9._~+/=-]+/gi, `$1${MASK}`],
  // access_token=… outside a URL (a logged request target `/sync?access_token=…` has no scheme).
  [/\b(access_token=)[^&#\s"'\\]*/gi, `$1${MASK}`],
  // JSON fields that are secrets by name.
  [/("(?:access_token|refresh_token|password|passphrase|token)"\s*:\s*")(?:[^"\\]|\\.)*/gi, `$1${MASK}`],
];

/** `s` with every secret we know the shape of replaced by `***`. */
export function scrubText(s: string): string {
  let out = s.replace(urlPattern, (u) => redactUrl(u));
  for (const [re, to] of rules) out = out.replace(re, to as string);
  // Request targets without a scheme: `?key=` / `&token=` values.
  return scrubQuery(out);
}
