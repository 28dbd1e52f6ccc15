/** Creating, naming and deactivating accounts; shared by /register, the Synapse admin API and the ops. */
import { AmiError } from "../../core/errors.ts";
import { isValidLocalpart, parseUserId } from "../events/ids.ts";
import type { Homeserver } from "../hs.ts";
import type { RegistrationTokenRow } from "../store/types.ts";
import { authOf } from "./auth.ts";

/** Longest password accepted (scrypt cost is per byte; Synapse caps at 512 too). */
export const MAX_PASSWORD_LENGTH = 512;

/**
 * A requested username -> its localpart. Accepts `alice` or `@alice:<our server>`; lowercases like Synapse;
 * M_INVALID_USERNAME for anything outside the user ID grammar.
 */
export function localpartFor(hs: Homeserver, username: string): string {
  let l = username;
  if (l.startsWith("@")) {
    const p = parseUserId(l);
    if (!p || p.server !== hs.serverName) throw new AmiError("M_INVALID_USERNAME", "User ID must be on this server");
    l = p.localpart;
  }
  l = l.toLowerCase();
  if (!isValidLocalpart(l)) {
    throw new AmiError("M_INVALID_USERNAME", "User ID can only contain characters a-z, 0-9, or '=_-./+'");
  }
  // `_` prefixes are reserved for application services, as in Synapse.
  if (l.startsWith("_")) throw new AmiError("M_INVALID_USERNAME", "User ID may not begin with '_'");
  if (Buffer.byteLength(`@${l}:${hs.serverName}`) > 255)
    throw new AmiError("M_INVALID_USERNAME", "User ID is too long");
  return l;
}

export const userIdOf = (hs: Homeserver, localpart: string): string => `@${localpart}:${hs.serverName}`;

/** A local user ID from a path/body: M_INVALID_PARAM when malformed, M_NOT_FOUND-worthy checks left to callers. */
export function parseLocalUserId(hs: Homeserver, userId: string): { localpart: string; local: boolean } {
  const p = parseUserId(userId);
  if (!p) throw new AmiError("M_INVALID_PARAM", `Invalid user ID: ${userId.slice(0, 300)}`);
  return { localpart: p.localpart, local: p.server === hs.serverName };
}

/** Local user ID for login: a localpart or a full ID; null when it cannot be one of ours. */
export function loginUserId(hs: Homeserver, user: string): string | null {
  if (user.startsWith("@")) {
    const p = parseUserId(user);
    return p && p.server === hs.serverName ? user : null;
  }
  return user.length > 0 && user.length <= 255 ? userIdOf(hs, user) : null;
}

export async function usernameAvailable(hs: Homeserver, localpart: string): Promise<boolean> {
  return (await hs.store.accounts.getUser(userIdOf(hs, localpart))) === null;
}

/** Create an account. M_USER_IN_USE if it exists. */
export async function createAccount(
  hs: Homeserver,
  p: { localpart: string; password: string | null; admin?: boolean; displayname?: string | null },
): Promise<string> {
  if (p.password !== null && p.password.length > MAX_PASSWORD_LENGTH) {
    throw new AmiError("M_INVALID_PARAM", `Password too long (max ${MAX_PASSWORD_LENGTH})`);
  }
  const userId = userIdOf(hs, p.localpart);
  await hs.store.accounts.createUser({
    userId,
    passwordHash: p.password === null ? null : await hs.auth.hashPassword(p.password),
    createdTs: Date.now(),
    admin: p.admin ?? false,
    deactivated: false,
    isGuest: false,
    // Synapse's default display name is the localpart; clients show it instead of the bare ID.
    displayname: p.displayname ?? p.localpart,
    avatarUrl: null,
  });
  return userId;
}

/** A random free localpart for register requests without `username` (Synapse uses numbers too). */
export async function generateLocalpart(hs: Homeserver): Promise<string> {
  for (;;) {
    const l = String(Math.floor(Math.random() * 1e9));
    if (await usernameAvailable(hs, l)) return l;
  }
}

/**
 * Deactivate: no password, no devices or tokens, left every room. Idempotent. Leaving is best effort: a
 * room whose rules refuse the leave must not keep the account alive.
 */
export async function deactivateAccount(hs: Homeserver, userId: string): Promise<void> {
  await hs.store.accounts.updateUser(userId, { deactivated: true, passwordHash: null });
  const auth = authOf(hs);
  auth.forgetUser(userId);
  await auth.logoutAll(userId);
  for (const m of await hs.store.events.getRoomsForUser(userId)) {
    if (m.membership !== "join" && m.membership !== "invite" && m.membership !== "knock") continue;
    try {
      await hs.rooms.setMembership({ roomId: m.roomId, sender: userId, target: userId, membership: "leave" });
    } catch (e) {
      hs.log.warn("deactivate: could not leave room", { userId, roomId: m.roomId, err: String(e) });
    }
  }
}

/** Whether a registration token can still be used now. */
export function registrationTokenUsable(t: RegistrationTokenRow | null, now = Date.now()): boolean {
  if (!t) return false;
  if (t.expiryTs !== null && t.expiryTs <= now) return false;
  return t.usesAllowed === null || t.pending + t.completed < t.usesAllowed;
}
