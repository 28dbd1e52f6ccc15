/** Users, devices, access tokens and registration tokens on SQLite. */
import { AmiError } from "../../../core/errors.ts";
import { DEVICE_PATCH_COLUMNS, deviceFromRow, regTokenFromRow, USER_PATCH_COLUMNS, userFromRow } from "../rows.ts";
import type { DeviceRow, RegistrationTokenRow, TokenRow, UserPatch, UserRow } from "../types.ts";
import { isForeignKeyViolation, isUniqueViolation, type SqliteDb } from "./db.ts";

const b = (v: boolean): number => (v ? 1 : 0);

/** "UPDATE t SET a = ?, b = ? ..." from the defined keys of a patch; booleans become 0/1. */
function patchSql(patch: Record<string, unknown>, columns: Record<string, string>) {
  const sets: string[] = [];
  const values: (string | number | null)[] = [];
  for (const [key, column] of Object.entries(columns)) {
    const v = patch[key];
    if (v === undefined) continue;
    sets.push(`${column} = ?`);
    values.push(typeof v === "boolean" ? b(v) : (v as string | number | null));
  }
  return { sets: sets.join(", "), values };
}

export function createUser(d: SqliteDb, u: UserRow): void {
  try {
    d.run(
      `INSERT INTO users (user_id, password_hash, created_ts, admin, deactivated, is_guest, displayname, avatar_url)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      u.userId,
      u.passwordHash,
      u.createdTs,
      b(u.admin),
      b(u.deactivated),
      b(u.isGuest),
      u.displayname,
      u.avatarUrl,
    );
  } catch (e) {
    if (isUniqueViolation(e)) throw new AmiError("M_USER_IN_USE", "User ID already taken.");
    throw e;
  }
}

export function getUser(d: SqliteDb, userId: string): UserRow | null {
  const r = d.q("SELECT * FROM users WHERE user_id = ?").get(userId);
  return r ? userFromRow(r) : null;
}

export function listUsers(
  d: SqliteDb,
  opts: { from?: string; limit: number; includeDeactivated?: boolean },
): UserRow[] {
  const sql = `SELECT * FROM users WHERE user_id > ? ${opts.includeDeactivated ? "" : "AND deactivated = 0"}
    ORDER BY user_id LIMIT ?`;
  return d
    .q(sql)
    .all(opts.from ?? "", Math.max(0, opts.limit))
    .map(userFromRow);
}

export function updateUser(d: SqliteDb, userId: string, patch: UserPatch): void {
  const { sets, values } = patchSql(patch, USER_PATCH_COLUMNS);
  if (sets) d.run(`UPDATE users SET ${sets} WHERE user_id = ?`, ...values, userId);
}

export function countUsers(d: SqliteDb): number {
  return (d.q("SELECT count(*) AS n FROM users").get() as any).n;
}

export function upsertDevice(d: SqliteDb, x: DeviceRow): void {
  try {
    // ON CONFLICT UPDATE, not INSERT OR REPLACE: a replace deletes the row first and would cascade to its tokens.
    d.run(
      `INSERT INTO devices (user_id, device_id, display_name, created_ts, last_seen_ts, last_seen_ip)
         VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (user_id, device_id) DO UPDATE SET display_name = excluded.display_name,
           created_ts = excluded.created_ts, last_seen_ts = excluded.last_seen_ts, last_seen_ip = excluded.last_seen_ip`,
      x.userId,
      x.deviceId,
      x.displayName,
      x.createdTs,
      x.lastSeenTs,
      x.lastSeenIp,
    );
  } catch (e) {
    if (isForeignKeyViolation(e)) throw new AmiError("M_UNKNOWN", `user ${x.userId} does not exist`);
    throw e;
  }
}

export function getDevice(d: SqliteDb, userId: string, deviceId: string): DeviceRow | null {
  const r = d.q("SELECT * FROM devices WHERE user_id = ? AND device_id = ?").get(userId, deviceId);
  return r ? deviceFromRow(r) : null;
}

export function listDevices(d: SqliteDb, userId: string): DeviceRow[] {
  return d.q("SELECT * FROM devices WHERE user_id = ? ORDER BY device_id").all(userId).map(deviceFromRow);
}

export function updateDevice(
  d: SqliteDb,
  userId: string,
  deviceId: string,
  patch: Partial<Pick<DeviceRow, "displayName" | "lastSeenTs" | "lastSeenIp">>,
): void {
  const { sets, values } = patchSql(patch, DEVICE_PATCH_COLUMNS);
  if (sets) d.run(`UPDATE devices SET ${sets} WHERE user_id = ? AND device_id = ?`, ...values, userId, deviceId);
}

export function deleteDevice(d: SqliteDb, userId: string, deviceId: string): void {
  d.tx(() => {
    d.run("DELETE FROM access_tokens WHERE user_id = ? AND device_id = ?", userId, deviceId);
    d.run("DELETE FROM devices WHERE user_id = ? AND device_id = ?", userId, deviceId);
  });
}

export function createToken(d: SqliteDb, t: TokenRow): void {
  try {
    d.run(
      "INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts) VALUES (?, ?, ?, ?)",
      t.tokenHash,
      t.userId,
      t.deviceId,
      t.createdTs,
    );
  } catch (e) {
    if (isForeignKeyViolation(e)) throw new AmiError("M_UNKNOWN", `device ${t.deviceId} of ${t.userId} does not exist`);
    throw e;
  }
}

export function getToken(d: SqliteDb, tokenHash: string): TokenRow | null {
  const r = d.q("SELECT * FROM access_tokens WHERE token_hash = ?").get(tokenHash) as any;
  return r ? { tokenHash: r.token_hash, userId: r.user_id, deviceId: r.device_id, createdTs: r.created_ts } : null;
}

export function deleteToken(d: SqliteDb, tokenHash: string): void {
  d.run("DELETE FROM access_tokens WHERE token_hash = ?", tokenHash);
}

export function deleteTokensForUser(d: SqliteDb, userId: string, exceptDeviceId?: string): void {
  if (exceptDeviceId === undefined) d.run("DELETE FROM access_tokens WHERE user_id = ?", userId);
  else d.run("DELETE FROM access_tokens WHERE user_id = ? AND device_id <> ?", userId, exceptDeviceId);
}

export function createRegistrationToken(d: SqliteDb, t: RegistrationTokenRow): void {
  try {
    d.run(
      "INSERT INTO registration_tokens (token, uses_allowed, pending, completed, expiry_ts) VALUES (?, ?, ?, ?, ?)",
      t.token,
      t.usesAllowed,
      t.pending,
      t.completed,
      t.expiryTs,
    );
  } catch (e) {
    if (isUniqueViolation(e)) throw new AmiError("M_INVALID_PARAM", "Registration token already exists.");
    throw e;
  }
}

export function getRegistrationToken(d: SqliteDb, token: string): RegistrationTokenRow | null {
  const r = d.q("SELECT * FROM registration_tokens WHERE token = ?").get(token);
  return r ? regTokenFromRow(r) : null;
}

export function consumeRegistrationToken(d: SqliteDb, token: string, now: number): boolean {
  // One conditional UPDATE: the check and the count are atomic (as Synapse, pending uses count against the limit).
  const r = d.run(
    `UPDATE registration_tokens SET completed = completed + 1
       WHERE token = ? AND (uses_allowed IS NULL OR pending + completed < uses_allowed)
         AND (expiry_ts IS NULL OR expiry_ts >= ?)`,
    token,
    now,
  );
  return Number(r.changes) === 1;
}

export function listRegistrationTokens(d: SqliteDb): RegistrationTokenRow[] {
  return d.q("SELECT * FROM registration_tokens ORDER BY token").all().map(regTokenFromRow);
}

export function updateRegistrationToken(
  d: SqliteDb,
  token: string,
  p: { usesAllowed?: number | null; expiryTs?: number | null },
): boolean {
  const r = d
    .q(
      `UPDATE registration_tokens SET uses_allowed = CASE WHEN ? THEN ? ELSE uses_allowed END,
       expiry_ts = CASE WHEN ? THEN ? ELSE expiry_ts END WHERE token = ?`,
    )
    .run(
      p.usesAllowed !== undefined ? 1 : 0,
      p.usesAllowed ?? null,
      p.expiryTs !== undefined ? 1 : 0,
      p.expiryTs ?? null,
      token,
    );
  return Number(r.changes) > 0;
}

export function deleteRegistrationToken(d: SqliteDb, token: string): void {
  d.run("DELETE FROM registration_tokens WHERE token = ?", token);
}
