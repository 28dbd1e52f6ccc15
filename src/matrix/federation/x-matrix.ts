/**
 * X-Matrix request authentication (spec server-server "Request Authentication"): the origin signs
 * `{method, uri, origin, destination, content}` with its server key and sends the signature in
 * `Authorization: X-Matrix origin="…",destination="…",key="…",sig="…"` (RFC 9110 auth-param syntax).
 */
import { AmiError } from "../../core/errors.ts";
import type { SigningKey } from "../events/signing.ts";
import { signJson, verifyJsonSignature } from "../events/signing.ts";

export interface RequestToSign {
  method: string;
  /** The request-target: path and query, exactly as sent. */
  uri: string;
  origin: string;
  destination: string;
  /** The JSON body, when the request has one. */
  content?: unknown;
}

export interface XMatrixAuth {
  origin: string;
  /** Absent from older servers' headers (the spec tells recipients to accept that). */
  destination?: string;
  key: string;
  sig: string;
}

function signable(r: RequestToSign): Record<string, unknown> {
  const o: Record<string, unknown> = { method: r.method, uri: r.uri, origin: r.origin, destination: r.destination };
  if (r.content !== undefined) o.content = r.content;
  return o;
}

/** The Authorization header value for `r`, signed with `key` (sent as origin `r.origin`). */
export function signRequest(r: RequestToSign, key: SigningKey): string {
  const signed = signJson(signable(r), r.origin, key);
  const sig = signed.signatures[r.origin][key.keyId];
  // Lower-case names, one space, quoted values: what older servers parse (the spec's compatibility advice).
  return `X-Matrix origin="${r.origin}",destination="${r.destination}",key="${key.keyId}",sig="${sig}"`;
}

/** True when `auth.sig` is the origin's signature of `r` by the public key given. */
export function verifyRequestSignature(r: RequestToSign, auth: XMatrixAuth, publicKeyBase64: string): boolean {
  const obj = { ...signable(r), signatures: { [auth.origin]: { [auth.key]: auth.sig } } };
  return verifyJsonSignature(obj, auth.origin, auth.key, publicKeyBase64);
}

const unauthorized = (why: string) => new AmiError("M_UNAUTHORIZED", `Bad X-Matrix Authorization header: ${why}`);

// RFC 9110 token characters.
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Parses an Authorization header strictly: scheme X-Matrix (case-insensitive), comma-separated name=value
 * pairs, names case-insensitive, values a token or a quoted string with backslash escapes (colons allowed unquoted,
 * for older servers); unknown names ignored, a repeated name refused; origin, key and sig required.
 * Throws 401 M_UNAUTHORIZED naming what is wrong.
 */
export function parseXMatrix(header: string | undefined): XMatrixAuth {
  if (header === undefined || header === "")
    throw new AmiError("M_UNAUTHORIZED", "Missing X-Matrix Authorization header");
  const m = /^X-Matrix +(.*)$/is.exec(header);
  if (!m) throw unauthorized("scheme is not X-Matrix");
  const s = m[1];
  const params = new Map<string, string>();
  let i = 0;
  const skipWs = () => {
    while (i < s.length && (s[i] === " " || s[i] === "\t")) i++;
  };
  while (true) {
    skipWs();
    const eq = s.indexOf("=", i);
    if (eq < 0) throw unauthorized("expected name=value");
    const name = s.slice(i, eq).trim().toLowerCase();
    if (!TOKEN.test(name)) throw unauthorized(`bad parameter name '${s.slice(i, eq)}'`);
    i = eq + 1;
    let value = "";
    if (s[i] === '"') {
      i++;
      let closed = false;
      while (i < s.length) {
        const c = s[i++];
        if (c === "\\") {
          if (i >= s.length) break;
          value += s[i++];
        } else if (c === '"') {
          closed = true;
          break;
        } else value += c;
      }
      if (!closed) throw unauthorized(`unterminated quoted value of '${name}'`);
    } else {
      const start = i;
      while (i < s.length && s[i] !== "," && s[i] !== " " && s[i] !== "\t") i++;
      value = s.slice(start, i);
      if (!/^[!#$%&'*+.^_`|~0-9A-Za-z:-]+$/.test(value)) throw unauthorized(`bad value of '${name}'`);
    }
    if (params.has(name)) throw unauthorized(`'${name}' given twice`);
    params.set(name, value);
    skipWs();
    if (i >= s.length) break;
    if (s[i] !== ",") throw unauthorized("expected ',' between parameters");
    i++;
  }
  const origin = params.get("origin");
  const key = params.get("key");
  const sig = params.get("sig");
  if (!origin) throw unauthorized("no origin");
  if (!key) throw unauthorized("no key");
  if (!sig) throw unauthorized("no sig");
  if (!/^[A-Za-z0-9.-]+(:\d+)?$|^\[[0-9A-Fa-f:.]+\](:\d+)?$/.test(origin))
    throw unauthorized("origin is not a server name");
  if (!/^ed25519:[A-Za-z0-9_]+$/.test(key)) throw unauthorized("key is not an ed25519 key id");
  const destination = params.get("destination");
  return { origin, destination, key, sig };
}
