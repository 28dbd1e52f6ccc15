/** Base64 as Matrix uses it (spec appendix "Unpadded Base64"): emit unpadded, accept every common form. */
import { AmiError } from "../../core/errors.ts";

/** Standard alphabet, no `=` padding. */
export function unpaddedBase64(buf: Uint8Array): string {
  return Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).toString("base64").replace(/=+$/, "");
}

/** URL-safe alphabet (`-` and `_`), no padding: the form of event IDs since room version 4. */
export function unpaddedBase64Url(buf: Uint8Array): string {
  return Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).toString("base64url");
}

const BASE64_RE = /^[A-Za-z0-9+/_-]*={0,2}$/;

/**
 * Decodes padded or unpadded, standard or URL-safe base64. Node's own decoder silently skips
 * garbage, so the shape is checked first: a bad signature must fail, not decode to something else.
 */
export function decodeBase64(s: string): Buffer {
  const body = s.replace(/=+$/, "");
  if (!BASE64_RE.test(s) || body.length % 4 === 1 || (s.length !== body.length && s.length % 4 !== 0)) {
    throw new AmiError("M_INVALID_PARAM", "Invalid base64");
  }
  return Buffer.from(body.replace(/-/g, "+").replace(/_/g, "/"), "base64");
}
