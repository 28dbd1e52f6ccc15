/** One timing-safe bearer-token check for every listener. */
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";

const digest = (s: string) => createHash("sha256").update(s).digest();

/**
 * True when `Authorization: Bearer <token>` carries exactly `token`. Both sides are hashed first so the
 * comparison takes the same time whatever the length of what was sent.
 */
export function bearerMatches(header: string | undefined, token: string): boolean {
  if (!token) return false;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? "");
  const got = digest(m ? m[1] : "");
  const ok = timingSafeEqual(got, digest(token));
  return ok && m !== null;
}

/** The bearer token from the Authorization header, or null (no header, or not a Bearer one). */
export function bearerToken(req: IncomingMessage): string | null {
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(req.headers.authorization ?? "");
  return m ? m[1] : null;
}
