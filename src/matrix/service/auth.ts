/**
 * Access tokens and sessions. Tokens are 32 random bytes (base64url) handed to the client once and stored
 * only as their sha256 hex. authenticate() keeps recent lookups in a small cache: every way a token can
 * stop working in this process (logout, device deletion, password change, deactivation, admin changes)
 * goes through the methods here, which drop the affected entries.
 */

import { createHash, randomBytes } from "node:crypto";
import { randomString } from "../events/ids.ts";
import type { AuthService, Homeserver } from "../hs.ts";
import { devicesDeleted } from "./keys.ts";
import { dummyHash, hashPassword, verifyPassword } from "./passwords.ts";
import type { Requester } from "./requester.ts";

const CACHE_MS = 10_000;
const CACHE_MAX = 10_000;
const LAST_SEEN_EVERY_MS = 60_000;

export const tokenHashOf = (token: string): string => createHash("sha256").update(token).digest("hex");

export class Auth implements AuthService {
  readonly #hs: Homeserver;
  readonly #cache = new Map<string, { requester: Requester; until: number }>();
  readonly #revokeListeners = new Set<(revoked: (r: Requester) => boolean) => void>();
  /** `${userId}\0${deviceId}` -> when last_seen was last written. */
  readonly #lastSeen = new Map<string, number>();

  constructor(hs: Homeserver) {
    this.#hs = hs;
    // Made now so the first failed login is not slower than the others (see verifyPasswordOrDummy).
    void dummyHash();
  }

  async authenticate(accessToken: string, ip: string): Promise<Requester | null> {
    if (accessToken.length === 0 || accessToken.length > 512) return null;
    const hash = tokenHashOf(accessToken);
    const now = Date.now();
    let requester = this.#cache.get(hash);
    if (!requester || requester.until < now) {
      this.#cache.delete(hash);
      const { store } = this.#hs;
      const tok = await store.accounts.getToken(hash);
      if (!tok) return null;
      const user = await store.accounts.getUser(tok.userId);
      if (!user || user.deactivated) return null;
      if (this.#cache.size >= CACHE_MAX) this.#cache.clear();
      requester = {
        requester: {
          userId: tok.userId,
          deviceId: tok.deviceId,
          isAdmin: user.admin,
          shadowBanned: !!user.shadowBanned,
          tokenHash: hash,
        },
        until: now + CACHE_MS,
      };
      this.#cache.set(hash, requester);
    }
    this.#touch(requester.requester, ip, now);
    return requester.requester;
  }

  // Last-seen is advisory: written at most once a minute per device, never awaited, failures ignored.
  #touch(r: Requester, ip: string, now: number): void {
    const key = `${r.userId}\u0000${r.deviceId}`;
    const last = this.#lastSeen.get(key);
    if (last !== undefined && now - last < LAST_SEEN_EVERY_MS) return;
    if (this.#lastSeen.size >= CACHE_MAX) this.#lastSeen.clear();
    this.#lastSeen.set(key, now);
    this.#hs.store.accounts.updateDevice(r.userId, r.deviceId, { lastSeenTs: now, lastSeenIp: ip }).catch(() => {});
  }

  async createSession(
    userId: string,
    opts: { deviceId?: string; displayName?: string; ip?: string },
  ): Promise<{ accessToken: string; deviceId: string }> {
    const { store } = this.#hs;
    const now = Date.now();
    const deviceId = opts.deviceId ?? randomString(10).toUpperCase();
    const existing = opts.deviceId ? await store.accounts.getDevice(userId, deviceId) : null;
    if (existing) {
      // Spec (login): logging in to a known device ID invalidates the device's earlier access tokens.
      await store.accounts.deleteDevice(userId, deviceId);
      this.#revoke((r) => r.userId === userId && r.deviceId === deviceId);
    }
    await store.accounts.upsertDevice({
      userId,
      deviceId,
      displayName: opts.displayName ?? existing?.displayName ?? null,
      createdTs: existing?.createdTs ?? now,
      lastSeenTs: opts.ip ? now : (existing?.lastSeenTs ?? null),
      lastSeenIp: opts.ip ?? existing?.lastSeenIp ?? null,
    });
    const accessToken = `ami_${randomBytes(32).toString("base64url")}`;
    await store.accounts.createToken({ tokenHash: tokenHashOf(accessToken), userId, deviceId, createdTs: now });
    return { accessToken, deviceId };
  }

  hashPassword(password: string): Promise<string> {
    return hashPassword(password);
  }

  verifyPassword(password: string, hash: string): Promise<boolean> {
    return verifyPassword(password, hash);
  }

  /** POST /logout: the spec deletes the token's device too. */
  async logout(r: Requester): Promise<void> {
    await this.deleteDevices(r.userId, [r.deviceId]);
    await this.#hs.store.accounts.deleteToken(r.tokenHash);
    this.#revoke((x) => x.tokenHash === r.tokenHash);
  }

  /** Delete devices (and so their tokens). */
  async deleteDevices(userId: string, deviceIds: string[]): Promise<void> {
    for (const d of deviceIds) await this.#hs.store.accounts.deleteDevice(userId, d);
    // Their keys and to-device inbox go too, and everyone sharing a room hears the device list changed.
    await devicesDeleted(this.#hs, userId, deviceIds);
    const set = new Set(deviceIds);
    this.#revoke((r) => r.userId === userId && set.has(r.deviceId));
  }

  /** Delete every device of the user except `exceptDeviceId`, and every token of the others. */
  async logoutAll(userId: string, exceptDeviceId?: string): Promise<void> {
    const { store } = this.#hs;
    const others = (await store.accounts.listDevices(userId))
      .map((d) => d.deviceId)
      .filter((d) => d !== exceptDeviceId);
    for (const d of others) await store.accounts.deleteDevice(userId, d);
    await devicesDeleted(this.#hs, userId, others);
    await store.accounts.deleteTokensForUser(userId, exceptDeviceId);
    this.#revoke((r) => r.userId === userId && r.deviceId !== exceptDeviceId);
  }

  /** Forget cached lookups of a user whose admin flag, shadow ban or deactivation changed. */
  forgetUser(userId: string): void {
    this.#dropWhere((r) => r.userId === userId);
  }

  onRevoke(fn: (revoked: (r: Requester) => boolean) => void): () => void {
    this.#revokeListeners.add(fn);
    return () => this.#revokeListeners.delete(fn);
  }

  /** Sessions matching `pred` were deleted from the store: forget them here and tell the listeners (WebSockets). */
  #revoke(pred: (r: Requester) => boolean): void {
    this.#dropWhere(pred);
    for (const fn of this.#revokeListeners) {
      try {
        fn(pred);
      } catch (e) {
        this.#hs.log.error("session revocation listener failed", { err: String(e) });
      }
    }
  }

  #dropWhere(pred: (r: Requester) => boolean): void {
    for (const [k, v] of this.#cache) if (pred(v.requester)) this.#cache.delete(k);
  }
}

/** The homeserver's Auth, with the session-management methods beyond the AuthService interface. */
export function authOf(hs: Homeserver): Auth {
  if (!(hs.auth instanceof Auth)) throw new Error("hs.auth is not service/auth.ts Auth");
  return hs.auth;
}
