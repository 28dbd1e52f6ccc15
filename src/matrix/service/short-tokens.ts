/**
 * Short-lived tokens with no device: m.login.token (POST /login/get_token, single use, 2 min) and OpenID tokens
 * (POST /user/{userId}/openid/request_token, 1 h, read by widget backends through the federation userinfo
 * endpoint). Stored as their sha256 like access tokens; expired ones are purged whenever one is issued.
 */
import type { Homeserver } from "../hs.ts";
import type { ShortTokenRow } from "../store/types.ts";
import { newToken, tokenHashOf } from "./auth.ts";

/** The spec's recommended m.login.token lifetime. */
export const LOGIN_TOKEN_MS = 120_000;
/** OpenID token lifetime (Synapse: one hour). */
export const OPENID_TOKEN_MS = 3_600_000;

const PREFIX: Record<ShortTokenRow["kind"], string> = { login: "amil", openid: "amio" };

/** A new token of `kind` for `userId`, valid `ttlMs`. */
export async function issueShortToken(
  hs: Homeserver,
  kind: ShortTokenRow["kind"],
  userId: string,
  ttlMs: number,
): Promise<string> {
  const now = Date.now();
  await hs.store.authTokens.deleteExpiredShortTokens(now);
  const token = newToken(PREFIX[kind]);
  await hs.store.authTokens.createShortToken({ tokenHash: tokenHashOf(token), kind, userId, expiresTs: now + ttlMs });
  return token;
}

/**
 * The user a token of `kind` stands for, or null if it is unknown, expired, or its user is deactivated; `consume`
 * uses it up (m.login.token is single use).
 */
export async function shortTokenUser(
  hs: Homeserver,
  kind: ShortTokenRow["kind"],
  token: string,
  consume: boolean,
): Promise<string | null> {
  if (token.length === 0 || token.length > 512) return null;
  const row = await hs.store.authTokens.takeShortToken(kind, tokenHashOf(token), Date.now(), consume);
  if (!row) return null;
  const user = await hs.store.accounts.getUser(row.userId);
  return user && !user.deactivated ? user.userId : null;
}
