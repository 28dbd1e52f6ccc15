/**
 * HTTP authentication as RTSP clients do it (RFC 2617 / RFC 7616 Digest with MD5, and Basic), with a stream key
 * as the password and any user name: the challenge, and which of a path's keys (if any) an Authorization header
 * proves. Digest never sends the key; Basic sends it as a URL `?key=` would.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

export const REALM = "ami-streams";

const md5 = (s: string) => createHash("md5").update(s).digest("hex");

export const newNonce = (): string => randomBytes(16).toString("hex");

/** WWW-Authenticate values: Digest first (what ffmpeg, VLC and GStreamer pick), then Basic. */
export const challenges = (nonce: string): [string, string][] => [
  ["WWW-Authenticate", `Digest realm="${REALM}", nonce="${nonce}", algorithm="MD5"`],
  ["WWW-Authenticate", `Basic realm="${REALM}"`],
];

/** Parameters of a Digest header (`name="quoted"` or `name=token`, comma separated). */
export function digestParams(v: string): Map<string, string> {
  const out = new Map<string, string>();
  const re = /([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  for (let m = re.exec(v); m; m = re.exec(v)) out.set((m[1] as string).toLowerCase(), m[2] ?? m[3] ?? "");
  return out;
}

const same = (a: string, b: string) =>
  a.length === b.length && timingSafeEqual(Buffer.from(a, "latin1"), Buffer.from(b, "latin1"));

export type Credential =
  | { kind: "none" }
  | { kind: "password"; password: string }
  | { kind: "digest"; key?: string; badUri?: true };

/**
 * What an Authorization header carries: Basic gives the password itself; Digest is checked against each
 * candidate key (the path's keys the server can read) and gives the matching one, or `key` undefined: wrong.
 * A Digest whose `uri` does not name the request's resource (`sameResource` false; RFC 7616 §3.4.6: the server
 * MUST check it) proves nothing and is marked `badUri`, even when its response is right.
 */
export function credential(
  header: string | undefined,
  method: string,
  nonce: string,
  candidates: () => string[],
  sameResource: (uri: string) => boolean = () => true,
): Credential {
  if (!header) return { kind: "none" };
  const sp = header.indexOf(" ");
  const scheme = header.slice(0, sp < 0 ? header.length : sp).toLowerCase();
  const rest = sp < 0 ? "" : header.slice(sp + 1);
  if (scheme === "basic") {
    const dec = Buffer.from(rest.trim(), "base64").toString("utf8");
    const c = dec.indexOf(":");
    return { kind: "password", password: c < 0 ? dec : dec.slice(c + 1) };
  }
  if (scheme !== "digest") return { kind: "digest" };
  const p = digestParams(rest);
  const response = p.get("response") ?? "";
  if (p.get("nonce") !== nonce || p.get("realm") !== REALM || !response) return { kind: "digest" };
  const uri = p.get("uri");
  if (uri === undefined || !sameResource(uri)) return { kind: "digest", badUri: true };
  const ha2 = md5(`${method}:${uri}`);
  const qop = p.get("qop");
  for (const key of candidates()) {
    const ha1 = md5(`${p.get("username") ?? ""}:${REALM}:${key}`);
    const want = qop
      ? md5(`${ha1}:${nonce}:${p.get("nc") ?? ""}:${p.get("cnonce") ?? ""}:${qop}:${ha2}`)
      : md5(`${ha1}:${nonce}:${ha2}`);
    if (same(want, response.toLowerCase())) return { kind: "digest", key };
  }
  return { kind: "digest" };
}
