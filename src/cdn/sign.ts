/**
 * Signed expiring URLs (token auth at the edge, like nginx `secure_link` or CloudFront signed URLs): the query
 * carries `expires` (Unix seconds) and `sig` = base64url(HMAC-SHA256(secret, `${expires}:${path}`)), where `path`
 * is the request path as sent (no query). The secret belongs to the node's origin (each `cdn deploy` node has its
 * own). A request under a signed prefix without a valid, unexpired signature is answered 403 by the edge itself:
 * no cache lookup, no upstream request. Both parameters are taken out of the target before it is keyed, so every
 * viewer's token shares one cached object, and the origin never sees them.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

export const EXPIRES_PARAM = "expires";
export const SIG_PARAM = "sig";
/** A SHA-256 HMAC in base64url without padding. */
const SIG_LENGTH = 43;
/** Far enough for any real link (~100 years); larger values are refused rather than trusted. */
const MAX_EXPIRES = 5_000_000_000;

export interface SigningRules {
  signingSecret: string | null;
  signedPaths: readonly string[];
}

export function signature(secret: string, path: string, expires: number): string {
  return createHmac("sha256", secret).update(`${expires}:${path}`).digest("base64url");
}

/** `path` (no query) signed until `expires` (Unix seconds): the target to hand out. */
export function signTarget(secret: string, path: string, expires: number): string {
  return `${path}?${EXPIRES_PARAM}=${expires}&${SIG_PARAM}=${signature(secret, path, expires)}`;
}

/**
 * Whether `path` (dot segments already resolved) is under a signed prefix. Also checked decoded and lower-cased:
 * an origin that decodes `%2F` or ignores case would otherwise serve `/public%2F..%2Fprivate/x` or `/PRIVATE/x`
 * unsigned. Erring this way only asks for a signature more often.
 */
export function needsSignature(rules: SigningRules, path: string): boolean {
  if (rules.signingSecret === null) return false;
  if (rules.signedPaths.some((p) => path.startsWith(p))) return true;
  if (rules.signedPaths.length === 1 && rules.signedPaths[0] === "/") return true;
  let decoded = path;
  try {
    decoded = new URL(`http://x${decodeURIComponentSafe(path).replace(/\\/g, "/")}`).pathname;
  } catch {}
  const forms = [path.toLowerCase(), decoded, decoded.toLowerCase()];
  return rules.signedPaths.some((p) => forms.some((f) => f.startsWith(p.toLowerCase()) || f.startsWith(p)));
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s.replace(/%2f/gi, "/").replace(/%2e/gi, ".").replace(/%5c/gi, "/");
  }
}

export type Verdict = { ok: true; target: string } | { ok: false; reason: string };

/**
 * Checks a request target (path + "?" + query, as sent) and returns it without `expires`/`sig`. Hostile inputs
 * (missing, repeated or malformed parameters, wrong lengths, expiry out of range) are refusals, never exceptions.
 */
export function verifyTarget(secret: string, target: string, nowMs: number): Verdict {
  const q = target.indexOf("?");
  if (q < 0) return { ok: false, reason: "missing signature" };
  const path = target.slice(0, q);
  let expires: string | null = null;
  let sig: string | null = null;
  const rest: string[] = [];
  for (const part of target.slice(q + 1).split("&")) {
    const eq = part.indexOf("=");
    const name = eq < 0 ? part : part.slice(0, eq);
    if (name === EXPIRES_PARAM || name === SIG_PARAM) {
      const value = eq < 0 ? "" : part.slice(eq + 1);
      if ((name === EXPIRES_PARAM ? expires : sig) !== null) return { ok: false, reason: `repeated '${name}'` };
      if (name === EXPIRES_PARAM) expires = value;
      else sig = value;
    } else if (part !== "") rest.push(part);
  }
  if (expires === null || sig === null) return { ok: false, reason: "missing signature" };
  if (!/^\d{1,10}$/.test(expires) || Number(expires) > MAX_EXPIRES) return { ok: false, reason: "malformed 'expires'" };
  if (sig.length !== SIG_LENGTH || !/^[A-Za-z0-9_-]+$/.test(sig)) return { ok: false, reason: "malformed 'sig'" };
  const want = Buffer.from(signature(secret, path, Number(expires)), "latin1");
  if (!timingSafeEqual(want, Buffer.from(sig, "latin1"))) return { ok: false, reason: "bad signature" };
  // Checked after the HMAC, so a forged link learns nothing from the difference between the two answers.
  if (Number(expires) * 1000 <= nowMs) return { ok: false, reason: "link expired" };
  return { ok: true, target: rest.length ? `${path}?${rest.join("&")}` : path };
}
