/**
 * Access tokens and sessions. Tokens are 32 random bytes (base64url) handed to the client once and stored
 * only as their sha256 hex. authenticate() keeps recent lookups in a small cache: every way a token can
 * stop working in this process (logout, device deletion, password change, deactivation, admin changes, a
 * refresh) goes through the methods here, which drop the affected entries.
 *
 * Refresh tokens (spec "Refreshing access tokens"): a session created with one has an access token expiring
 * after matrix.auth.accessTokenLifetimeMs. POST /refresh exchanges refresh token R for a new pair (A', R'); R
 * stays usable (a client whose answer was lost can retry) until A' is first used or R' is refreshed in turn,
 * then R and the access tokens issued with it are deleted, as Synapse does.
 */

import { createHash, randomBytes } from "node:crypto";
import { AmiError } from "../../core/errors.ts";
import { randomString } from "../events/ids.ts";
import type { AuthService, Homeserver } from "../hs.ts";
import { devicesDeleted } from "./keys.ts";
import { dummyHash, hashPassword, verifyPassword } from "./passwords.ts";
import type { Requester } from "./requester.ts";

const CACHE_MS = 10_000;
const CACHE_MAX = 10_000;
const LAST_SEEN_EVERY_MS = 60_000;

export const tokenHashOf = (token: string): string => createHash("sha256").update(token).digest("hex");

/** A new opaque token: a prefix naming its kind and 32 random bytes. */
export const newToken = (prefix: string): string => `${prefix}_${randomBytes(32).toString("base64url")}`;

/** An expired (or already used) token: the client should refresh or log in again, keeping its local data. */
export const softLogout = (message: string): AmiError =>
  new AmiError("M_UNKNOWN_TOKEN", message, { soft_logout: true });

/**
 * Which sessions stop working, as data (it crosses to the other workers on the bus): token hashes, or a user's
 * devices (all of them, the listed ones, or all but one). `locked`: the tokens stay, the account is locked.
 */
export type Revocation =
  /** `rotated`: retired by a refresh the client made itself (its new token is in use). */
  { tokens: string[]; rotated?: boolean } | { userId: string; devices?: string[]; except?: string; locked?: boolean };

export type RevokeListener = (revoked: (r: Requester) => boolean, rev: Revocation) => void;

export function revokes(rev: Revocation, r: Requester): boolean {
  if ("tokens" in rev) return rev.tokens.includes(r.tokenHash);
  if (r.userId !== rev.userId) return false;
  if (rev.devices) return rev.devices.includes(r.deviceId);
  return rev.except === undefined || r.deviceId !== rev.except;
}

/** A revocation from the bus (another worker's JSON): its shape checked before it is applied. */
export function isRevocation(v: unknown): v is Revocation {
  if (!v || typeof v !== "object") return false;
  const o = v as Record<string, unknown>;
  const strings = (a: unknown) => Array.isArray(a) && a.every((x) => typeof x === "string");
  if ("tokens" in o) return strings(o.tokens);
  return (
    typeof o.userId === "string" &&
    (o.devices === undefined || strings(o.devices)) &&
    (o.except === undefined || typeof o.except === "string")
  );
}

export interface Session {
  accessToken: string;
  deviceId: string;
  /** Set when the session was asked for with a refresh token. */
  refreshToken?: string;
  expiresInMs?: number;
}

export class Auth implements AuthService {
  readonly #hs: Homeserver;
  readonly #cache = new Map<string, { requester: Requester; until: number; expiresTs: number | null }>();
  readonly #revokeListeners = new Set<RevokeListener>();
  /** Bumped on every revocation heard: a lookup that raced one is not cached (it may have read the old row). */
  #generation = 0;
  /** `${userId}\0${deviceId}` -> when last_seen was last written. */
  readonly #lastSeen = new Map<string, number>();

  constructor(hs: Homeserver) {
    this.#hs = hs;
    // Another worker revoked sessions: forget them here and close what they hold open here (WebSockets, long-polls).
    hs.cluster.bus.subscribe((m) => {
      if (m.t !== "auth") return;
      const rev = m.rev !== undefined && isRevocation(m.rev) ? m.rev : null;
      if (!rev) {
        this.#generation++;
        this.#cache.clear();
      } else if (m.close) this.#revoke(rev, false);
      else this.#dropWhere(rev, false);
    });
    // Made now so the first failed login is not slower than the others (see verifyPasswordOrDummy).
    void dummyHash();
  }

  async authenticate(accessToken: string, ip: string, userAgent?: string): Promise<Requester | null> {
    if (accessToken.length === 0 || accessToken.length > 512) return null;
    const hash = tokenHashOf(accessToken);
    const now = Date.now();
    let requester = this.#cache.get(hash);
    if (!requester || requester.until < now) {
      this.#cache.delete(hash);
      const generation = this.#generation;
      const { store } = this.#hs;
      const tok = await store.accounts.getToken(hash);
      if (!tok) return null;
      const user = await store.accounts.getUser(tok.userId);
      if (!user || user.deactivated) return null;
      const expiresTs = tok.expiresTs ?? null;
      // The first use of a refreshed session retires the refresh token it was exchanged for.
      if (tok.refreshHash && (expiresTs === null || expiresTs > now)) await this.#retirePredecessors(tok.refreshHash);
      if (this.#cache.size >= CACHE_MAX) this.#cache.clear();
      requester = {
        requester: {
          userId: tok.userId,
          deviceId: tok.deviceId,
          isAdmin: user.admin,
          tokenHash: hash,
          locked: !!user.locked,
          suspended: !!user.suspended,
          ...(expiresTs !== null ? { expiresTs } : {}),
          shadowBanned: !!user.shadowBanned,
        },
        until: now + CACHE_MS,
        expiresTs,
      };
      if (generation === this.#generation) this.#cache.set(hash, requester);
    }
    if (requester.expiresTs !== null && requester.expiresTs <= now) throw softLogout("Access token has expired");
    this.#touch(requester.requester, ip, userAgent, now);
    return requester.requester;
  }

  // Last-seen (time, IP, user agent: what whois shows) is advisory: written at most once a minute per device, never
  // awaited, failures ignored.
  #touch(r: Requester, ip: string, userAgent: string | undefined, now: number): void {
    const key = `${r.userId}\u0000${r.deviceId}`;
    const last = this.#lastSeen.get(key);
    if (last !== undefined && now - last < LAST_SEEN_EVERY_MS) return;
    if (this.#lastSeen.size >= CACHE_MAX) this.#lastSeen.clear();
    this.#lastSeen.set(key, now);
    const lastSeenUserAgent = userAgent ? userAgent.slice(0, 512) : null;
    this.#hs.store.accounts
      .updateDevice(r.userId, r.deviceId, { lastSeenTs: now, lastSeenIp: ip, lastSeenUserAgent })
      .catch(() => {});
  }

  async createSession(
    userId: string,
    opts: { deviceId?: string; displayName?: string; ip?: string; refreshToken?: boolean },
  ): Promise<Session> {
    const { store } = this.#hs;
    const now = Date.now();
    const deviceId = opts.deviceId ?? randomString(10).toUpperCase();
    const existing = opts.deviceId ? await store.accounts.getDevice(userId, deviceId) : null;
    if (existing) {
      // Spec (login): logging in to a known device ID invalidates the device's earlier access tokens.
      await store.accounts.deleteDevice(userId, deviceId);
      this.#revoke({ userId, devices: [deviceId] });
    }
    await store.accounts.upsertDevice({
      userId,
      deviceId,
      displayName: opts.displayName ?? existing?.displayName ?? null,
      createdTs: existing?.createdTs ?? now,
      lastSeenTs: opts.ip ? now : (existing?.lastSeenTs ?? null),
      lastSeenIp: opts.ip ?? existing?.lastSeenIp ?? null,
    });
    if (opts.refreshToken) return this.#issuePair(userId, deviceId);
    const accessToken = newToken("ami");
    await store.accounts.createToken({ tokenHash: tokenHashOf(accessToken), userId, deviceId, createdTs: now });
    return { accessToken, deviceId };
  }

  /** A refresh token and an expiring access token issued with it, for an existing device. */
  async #issuePair(userId: string, deviceId: string): Promise<Session & { refreshHash: string }> {
    const { store, config } = this.#hs;
    const now = Date.now();
    const lifetime = config.auth.accessTokenLifetimeMs;
    const refreshToken = newToken("amir");
    const refreshHash = tokenHashOf(refreshToken);
    await store.authTokens.createRefreshToken({ tokenHash: refreshHash, userId, deviceId, createdTs: now });
    const accessToken = newToken("ami");
    await store.accounts.createToken({
      tokenHash: tokenHashOf(accessToken),
      userId,
      deviceId,
      createdTs: now,
      expiresTs: now + lifetime,
      refreshHash,
    });
    return { accessToken, deviceId, refreshToken, expiresInMs: lifetime, refreshHash };
  }

  /**
   * POST /refresh: a new access token and refresh token for the refresh token's device. Unknown, retired, or of
   * a deactivated user: 401 M_UNKNOWN_TOKEN with soft_logout (the spec's answer).
   */
  async refresh(refreshToken: string): Promise<Session> {
    const { store } = this.#hs;
    const hash = tokenHashOf(refreshToken);
    const row = refreshToken.length > 512 ? null : await store.authTokens.getRefreshToken(hash);
    const user = row ? await store.accounts.getUser(row.userId) : null;
    if (!row || !user || user.deactivated) throw softLogout("Unknown or already used refresh token");
    // Refreshing R' retires R (spec: the old refresh token is revoked once the new one is used); a successor R
    // handed out before whose session never started is replaced by the one made now.
    await this.#retirePredecessors(hash);
    if (row.nextHash) await this.#deleteRefreshTokens([row.nextHash]);
    const pair = await this.#issuePair(row.userId, row.deviceId);
    await store.authTokens.setRefreshTokenNext(hash, pair.refreshHash);
    const { refreshHash: _h, ...session } = pair;
    return session;
  }

  async #retirePredecessors(refreshHash: string): Promise<void> {
    const before = await this.#hs.store.authTokens.refreshTokensBefore(refreshHash);
    if (before.length) await this.#deleteRefreshTokens(before);
  }

  async #deleteRefreshTokens(hashes: string[]): Promise<void> {
    const gone = new Set(await this.#hs.store.authTokens.deleteRefreshTokens(hashes));
    if (gone.size) this.#revoke({ tokens: [...gone], rotated: true });
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
    this.#revoke({ tokens: [r.tokenHash] });
  }

  /**
   * Delete devices (and so their tokens). The revocation goes out before the device list change: that change wakes
   * the user's own long-polls too, and one woken on another worker before the revocation reached it would answer 200
   * to a session that no longer exists (the bus keeps one worker's messages in order).
   */
  async deleteDevices(userId: string, deviceIds: string[]): Promise<void> {
    for (const d of deviceIds) await this.#hs.store.accounts.deleteDevice(userId, d);
    this.#revoke({ userId, devices: deviceIds });
    // Their keys and to-device inbox go too, and everyone sharing a room hears the device list changed.
    await devicesDeleted(this.#hs, userId, deviceIds);
  }

  /** Delete every device of the user except `exceptDeviceId`, and every token of the others. */
  async logoutAll(userId: string, exceptDeviceId?: string): Promise<void> {
    const { store } = this.#hs;
    const others = (await store.accounts.listDevices(userId))
      .map((d) => d.deviceId)
      .filter((d) => d !== exceptDeviceId);
    for (const d of others) await store.accounts.deleteDevice(userId, d);
    await store.accounts.deleteTokensForUser(userId, exceptDeviceId);
    // Revoked before the device list change that wakes long-polls (deleteDevices says why).
    this.#revoke(exceptDeviceId === undefined ? { userId } : { userId, except: exceptDeviceId });
    await devicesDeleted(this.#hs, userId, others);
  }

  /** Forget cached lookups of a user whose admin flag, shadow ban or deactivation changed. */
  forgetUser(userId: string): void {
    this.#dropWhere({ userId });
  }

  /**
   * The user's account was locked or unlocked (or suspended): forget cached lookups, and on a lock tell the listeners
   * so open WebSockets close — the tokens stay in the store and work again once the lock is lifted.
   */
  moderationChanged(userId: string, locked: boolean): void {
    if (locked) this.#revoke({ userId, locked: true });
    else this.forgetUser(userId);
  }

  onRevoke(fn: RevokeListener): () => void {
    this.#revokeListeners.add(fn);
    return () => this.#revokeListeners.delete(fn);
  }

  /**
   * Sessions `rev` names were deleted from the store (or locked): forget them here, tell the listeners (WebSockets,
   * long-polls), and tell the other workers to do the same (`publish`: false when the news came from one).
   */
  #revoke(rev: Revocation, publish = true): void {
    this.#dropWhere(rev, false);
    if (publish) this.#hs.cluster.bus.publish({ t: "auth", rev, close: true });
    const pred = (r: Requester) => revokes(rev, r);
    for (const fn of this.#revokeListeners) {
      try {
        fn(pred, rev);
      } catch (e) {
        this.#hs.log.error("session revocation listener failed", { err: String(e) });
      }
    }
  }

  #dropWhere(rev: Revocation, publish = true): void {
    this.#generation++;
    for (const [k, v] of this.#cache) if (revokes(rev, v.requester)) this.#cache.delete(k);
    // Other workers cached lookups too (cluster/bus.ts): they drop theirs.
    if (publish) this.#hs.cluster.bus.publish({ t: "auth", rev });
  }
}

/** The homeserver's Auth, with the session-management methods beyond the AuthService interface. */
export function authOf(hs: Homeserver): Auth {
  if (!(hs.auth instanceof Auth)) throw new Error("hs.auth is not service/auth.ts Auth");
  return hs.auth;
}
