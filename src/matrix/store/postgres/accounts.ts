/** Users, devices, access tokens and registration tokens on PostgreSQL. */
import { AmiError } from "../../../core/errors.ts";
import { DEVICE_PATCH_COLUMNS, deviceFromRow, regTokenFromRow, USER_PATCH_COLUMNS, userFromRow } from "../rows.ts";
import type { DeviceRow, RegistrationTokenRow, TokenRow, UserPatch, UserRow } from "../types.ts";
import { isForeignKeyViolation, isUniqueViolation, type PgDb } from "./db.ts";

/** "a = $n, b = $n+1" from the defined keys of a patch, numbering after `first` fixed parameters. */
function patchSql(patch: Record<string, unknown>, columns: Record<string, string>, first: number) {
  const sets: string[] = [];
  const values: unknown[] = [];
  for (const [key, column] of Object.entries(columns)) {
    if (patch[key] === undefined) continue;
    values.push(patch[key]);
    sets.push(`${column} = $${first + values.length}`);
  }
  return { sets: sets.join(", "), values };
}

export async function createUser(d: PgDb, u: UserRow): Promise<void> {
  try {
    await d.query(
      `INSERT INTO users (user_id, password_hash, created_ts, admin, deactivated, is_guest, displayname, avatar_url)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [u.userId, u.passwordHash, u.createdTs, u.admin, u.deactivated, u.isGuest, u.displayname, u.avatarUrl],
    );
  } catch (e) {
    if (isUniqueViolation(e)) throw new AmiError("M_USER_IN_USE", "User ID already taken.");
    throw e;
  }
}

export async function getUser(d: PgDb, userId: string): Promise<UserRow | null> {
  const r = await d.row("SELECT * FROM users WHERE user_id = $1", [userId]);
  return r ? userFromRow(r) : null;
}

export async function listUsers(
  d: PgDb,
  opts: { from?: string; limit: number; includeDeactivated?: boolean },
): Promise<UserRow[]> {
  const sql = `SELECT * FROM users WHERE user_id > $1 ${opts.includeDeactivated ? "" : "AND NOT deactivated"}
    ORDER BY user_id LIMIT $2`;
  return (await d.rows(sql, [opts.from ?? "", Math.max(0, opts.limit)])).map(userFromRow);
}

export async function updateUser(d: PgDb, userId: string, patch: UserPatch): Promise<void> {
  const { sets, values } = patchSql(patch, USER_PATCH_COLUMNS, 1);
  if (sets) await d.query(`UPDATE users SET ${sets} WHERE user_id = $1`, [userId, ...values]);
}

export async function countUsers(d: PgDb): Promise<number> {
  return (await d.row("SELECT count(*) AS n FROM users")).n;
}

export async function upsertDevice(d: PgDb, x: DeviceRow): Promise<void> {
  try {
    await d.query(
      `INSERT INTO devices (user_id, device_id, display_name, created_ts, last_seen_ts, last_seen_ip)
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (user_id, device_id) DO UPDATE SET display_name = EXCLUDED.display_name,
         created_ts = EXCLUDED.created_ts, last_seen_ts = EXCLUDED.last_seen_ts, last_seen_ip = EXCLUDED.last_seen_ip`,
      [x.userId, x.deviceId, x.displayName, x.createdTs, x.lastSeenTs, x.lastSeenIp],
    );
  } catch (e) {
    if (isForeignKeyViolation(e)) throw new AmiError("M_UNKNOWN", `user ${x.userId} does not exist`);
    throw e;
  }
}

export async function getDevice(d: PgDb, userId: string, deviceId: string): Promise<DeviceRow | null> {
  const r = await d.row("SELECT * FROM devices WHERE user_id = $1 AND device_id = $2", [userId, deviceId]);
  return r ? deviceFromRow(r) : null;
}

export async function listDevices(d: PgDb, userId: string): Promise<DeviceRow[]> {
  return (await d.rows("SELECT * FROM devices WHERE user_id = $1 ORDER BY device_id", [userId])).map(deviceFromRow);
}

export async function updateDevice(
  d: PgDb,
  userId: string,
  deviceId: string,
  patch: Partial<Pick<DeviceRow, "displayName" | "lastSeenTs" | "lastSeenIp">>,
): Promise<void> {
  const { sets, values } = patchSql(patch, DEVICE_PATCH_COLUMNS, 2);
  if (sets)
    await d.query(`UPDATE devices SET ${sets} WHERE user_id = $1 AND device_id = $2`, [userId, deviceId, ...values]);
}

export async function deleteDevice(d: PgDb, userId: string, deviceId: string): Promise<void> {
  await d.query(
    `WITH t AS (DELETE FROM access_tokens WHERE user_id = $1 AND device_id = $2)
     DELETE FROM devices WHERE user_id = $1 AND device_id = $2`,
    [userId, deviceId],
  );
}

export async function createToken(d: PgDb, t: TokenRow): Promise<void> {
  try {
    await d.query("INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts) VALUES ($1, $2, $3, $4)", [
      t.tokenHash,
      t.userId,
      t.deviceId,
      t.createdTs,
    ]);
  } catch (e) {
    if (isForeignKeyViolation(e)) throw new AmiError("M_UNKNOWN", `device ${t.deviceId} of ${t.userId} does not exist`);
    throw e;
  }
}

export async function getToken(d: PgDb, tokenHash: string): Promise<TokenRow | null> {
  const r = await d.row("SELECT * FROM access_tokens WHERE token_hash = $1", [tokenHash]);
  return r ? { tokenHash: r.token_hash, userId: r.user_id, deviceId: r.device_id, createdTs: r.created_ts } : null;
}

export async function deleteToken(d: PgDb, tokenHash: string): Promise<void> {
  await d.query("DELETE FROM access_tokens WHERE token_hash = $1", [tokenHash]);
}

export async function deleteTokensForUser(d: PgDb, userId: string, exceptDeviceId?: string): Promise<void> {
  if (exceptDeviceId === undefined) await d.query("DELETE FROM access_tokens WHERE user_id = $1", [userId]);
  else await d.query("DELETE FROM access_tokens WHERE user_id = $1 AND device_id <> $2", [userId, exceptDeviceId]);
}

export async function createRegistrationToken(d: PgDb, t: RegistrationTokenRow): Promise<void> {
  try {
    await d.query(
      "INSERT INTO registration_tokens (token, uses_allowed, pending, completed, expiry_ts) VALUES ($1, $2, $3, $4, $5)",
      [t.token, t.usesAllowed, t.pending, t.completed, t.expiryTs],
    );
  } catch (e) {
    if (isUniqueViolation(e)) throw new AmiError("M_INVALID_PARAM", "Registration token already exists.");
    throw e;
  }
}

export async function getRegistrationToken(d: PgDb, token: string): Promise<RegistrationTokenRow | null> {
  const r = await d.row("SELECT * FROM registration_tokens WHERE token = $1", [token]);
  return r ? regTokenFromRow(r) : null;
}

export async function consumeRegistrationToken(d: PgDb, token: string, now: number): Promise<boolean> {
  // One conditional UPDATE: a concurrent consumer waits on the row lock, then re-checks the WHERE on the new row.
  const r = await d.query(
    `UPDATE registration_tokens SET completed = completed + 1
     WHERE token = $1 AND (uses_allowed IS NULL OR pending + completed < uses_allowed)
       AND (expiry_ts IS NULL OR expiry_ts >= $2)`,
    [token, now],
  );
  return r.rowCount === 1;
}

export async function listRegistrationTokens(d: PgDb): Promise<RegistrationTokenRow[]> {
  return (await d.rows("SELECT * FROM registration_tokens ORDER BY token")).map(regTokenFromRow);
}

export async function updateRegistrationToken(
  d: PgDb,
  token: string,
  p: { usesAllowed?: number | null; expiryTs?: number | null },
): Promise<boolean> {
  const r = await d.query(
    `UPDATE registration_tokens SET uses_allowed = CASE WHEN $1 THEN $2::bigint ELSE uses_allowed END,
     expiry_ts = CASE WHEN $3 THEN $4::bigint ELSE expiry_ts END WHERE token = $5`,
    [p.usesAllowed !== undefined, p.usesAllowed ?? null, p.expiryTs !== undefined, p.expiryTs ?? null, token],
  );
  return (r.rowCount ?? 0) > 0;
}

export async function deleteRegistrationToken(d: PgDb, token: string): Promise<void> {
  await d.query("DELETE FROM registration_tokens WHERE token = $1", [token]);
}
