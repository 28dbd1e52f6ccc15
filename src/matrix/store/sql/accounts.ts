/** AccountStore for both backends: users, devices, access tokens and registration tokens read alike in each. */
import { AmiError } from "../../../core/errors.ts";
import {
  containsSql,
  DEVICE_PATCH_COLUMNS,
  deviceFromRow,
  regTokenFromRow,
  USER_PATCH_COLUMNS,
  userFromRow,
} from "../rows.ts";
import type { Sql, SqlParam } from "../sql.ts";
import type {
  AccountStore,
  DeviceRow,
  RegistrationTokenRow,
  TokenRow,
  UserListFilter,
  UserOrder,
  UserPatch,
  UserRow,
} from "../types.ts";

/** SQL of each admin listing order (NULL display names sort as "" on both dialects). */
const ORDER_SQL: Record<UserOrder, string> = {
  name: "user_id",
  is_guest: "is_guest",
  admin: "admin",
  deactivated: "deactivated",
  shadow_banned: "shadow_banned",
  displayname: "COALESCE(displayname, '')",
  avatar_url: "COALESCE(avatar_url, '')",
  creation_ts: "created_ts",
};

/** WHERE clause and parameters of an admin user listing's filter. */
function userFilterSql(f: UserListFilter): { where: string; params: SqlParam[] } {
  const conds: string[] = [];
  const params: SqlParam[] = [];
  if (!f.includeDeactivated) conds.push("NOT deactivated");
  if (f.guests === false) conds.push("NOT is_guest");
  if (f.admins !== undefined) {
    conds.push("admin = ?");
    params.push(f.admins);
  }
  if (f.userIdLike) {
    const [c, p] = containsSql("user_id", f.userIdLike);
    conds.push(c);
    params.push(p);
  }
  if (f.name) {
    // "@" localpart ":" server: the localpart is what is left between the sigil and the server suffix.
    const id = f.serverName ? `substr(user_id, 2, length(user_id) - ${1 + f.serverName.length + 1})` : "user_id";
    const [c1, p1] = containsSql(id, f.name);
    const [c2, p2] = containsSql("COALESCE(displayname, '')", f.name);
    conds.push(`(${c1} OR ${c2})`);
    params.push(p1, p2);
  }
  return { where: conds.length ? `WHERE ${conds.join(" AND ")}` : "", params };
}

/** "a = ?, b = ?" from the defined keys of a patch, with their values. */
function patchSql(patch: Record<string, unknown>, columns: Record<string, string>) {
  const sets: string[] = [];
  const values: SqlParam[] = [];
  for (const [key, column] of Object.entries(columns)) {
    const v = patch[key];
    if (v === undefined) continue;
    sets.push(`${column} = ?`);
    values.push(v as SqlParam);
  }
  return { sets: sets.join(", "), values };
}

export class SqlAccountStore implements AccountStore {
  readonly #sql: Sql;
  constructor(sql: Sql) {
    this.#sql = sql;
  }

  async createUser(u: UserRow): Promise<void> {
    try {
      await this.#sql.run(
        `INSERT INTO users (user_id, password_hash, created_ts, admin, deactivated, is_guest, displayname, avatar_url,
           locked, suspended)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [
          u.userId,
          u.passwordHash,
          u.createdTs,
          u.admin,
          u.deactivated,
          u.isGuest,
          u.displayname,
          u.avatarUrl,
          u.locked ?? false,
          u.suspended ?? false,
        ],
      );
    } catch (e) {
      if (this.#sql.isUniqueViolation(e)) throw new AmiError("M_USER_IN_USE", "User ID already taken.");
      throw e;
    }
  }

  async getUser(userId: string): Promise<UserRow | null> {
    const r = await this.#sql.get("SELECT * FROM users WHERE user_id = ?", [userId]);
    return r ? userFromRow(r) : null;
  }

  async getUsers(userIds: string[]): Promise<UserRow[]> {
    if (userIds.length === 0) return [];
    const sql = this.#sql;
    const rows = await sql.all(`SELECT * FROM users WHERE ${sql.anyOf("user_id")} ORDER BY user_id`, [userIds]);
    return rows.map(userFromRow);
  }

  async listUsers(opts: { from?: string; limit: number; includeDeactivated?: boolean }): Promise<UserRow[]> {
    const sql = `SELECT * FROM users WHERE user_id > ? ${opts.includeDeactivated ? "" : "AND NOT deactivated"}
      ORDER BY user_id LIMIT ?`;
    return (await this.#sql.all(sql, [opts.from ?? "", Math.max(0, opts.limit)])).map(userFromRow);
  }

  async queryUsers(q: {
    filter: UserListFilter;
    order: UserOrder;
    dir: "f" | "b";
    offset: number;
    limit: number;
  }): Promise<{ rows: UserRow[]; total: number }> {
    const { where, params } = userFilterSql(q.filter);
    const d = q.dir === "b" ? "DESC" : "ASC";
    const rows = await this.#sql.all(
      `SELECT * FROM users ${where} ORDER BY ${ORDER_SQL[q.order]} ${d}, user_id ${d} LIMIT ? OFFSET ?`,
      [...params, Math.max(0, q.limit), Math.max(0, q.offset)],
    );
    const total = Number((await this.#sql.get(`SELECT count(*) AS n FROM users ${where}`, params)).n);
    return { rows: rows.map(userFromRow), total };
  }

  async updateUser(userId: string, patch: UserPatch): Promise<void> {
    const { sets, values } = patchSql(patch, USER_PATCH_COLUMNS);
    if (sets) await this.#sql.run(`UPDATE users SET ${sets} WHERE user_id = ?`, [...values, userId]);
  }

  async countUsers(): Promise<number> {
    return Number((await this.#sql.get("SELECT count(*) AS n FROM users")).n);
  }

  async upsertDevice(x: DeviceRow): Promise<void> {
    try {
      // ON CONFLICT UPDATE, not SQLite's INSERT OR REPLACE: a replace deletes the row first and would cascade to
      // its tokens.
      await this.#sql.run(
        `INSERT INTO devices (user_id, device_id, display_name, created_ts, last_seen_ts, last_seen_ip,
           last_seen_user_agent)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (user_id, device_id) DO UPDATE SET display_name = excluded.display_name,
           created_ts = excluded.created_ts, last_seen_ts = excluded.last_seen_ts, last_seen_ip = excluded.last_seen_ip,
           last_seen_user_agent = excluded.last_seen_user_agent`,
        [x.userId, x.deviceId, x.displayName, x.createdTs, x.lastSeenTs, x.lastSeenIp, x.lastSeenUserAgent ?? null],
      );
    } catch (e) {
      if (this.#sql.isForeignKeyViolation(e)) throw new AmiError("M_UNKNOWN", `user ${x.userId} does not exist`);
      throw e;
    }
  }

  async getDevice(userId: string, deviceId: string): Promise<DeviceRow | null> {
    const r = await this.#sql.get("SELECT * FROM devices WHERE user_id = ? AND device_id = ?", [userId, deviceId]);
    return r ? deviceFromRow(r) : null;
  }

  async listDevices(userId: string): Promise<DeviceRow[]> {
    return (await this.#sql.all("SELECT * FROM devices WHERE user_id = ? ORDER BY device_id", [userId])).map(
      deviceFromRow,
    );
  }

  async updateDevice(
    userId: string,
    deviceId: string,
    patch: Partial<Pick<DeviceRow, "displayName" | "lastSeenTs" | "lastSeenIp" | "lastSeenUserAgent">>,
  ): Promise<void> {
    const { sets, values } = patchSql(patch, DEVICE_PATCH_COLUMNS);
    if (sets)
      await this.#sql.run(`UPDATE devices SET ${sets} WHERE user_id = ? AND device_id = ?`, [
        ...values,
        userId,
        deviceId,
      ]);
  }

  async deleteDevice(userId: string, deviceId: string): Promise<void> {
    await this.#sql.atomic([
      ["DELETE FROM access_tokens WHERE user_id = ? AND device_id = ?", [userId, deviceId]],
      ["DELETE FROM refresh_tokens WHERE user_id = ? AND device_id = ?", [userId, deviceId]],
      ["DELETE FROM devices WHERE user_id = ? AND device_id = ?", [userId, deviceId]],
    ]);
  }

  async createToken(t: TokenRow): Promise<void> {
    try {
      await this.#sql.run(
        `INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts, expires_ts, refresh_hash)
         VALUES (?, ?, ?, ?, ?, ?)`,
        [t.tokenHash, t.userId, t.deviceId, t.createdTs, t.expiresTs ?? null, t.refreshHash ?? null],
      );
    } catch (e) {
      if (this.#sql.isForeignKeyViolation(e))
        throw new AmiError("M_UNKNOWN", `device ${t.deviceId} of ${t.userId} does not exist`);
      throw e;
    }
  }

  async getToken(tokenHash: string): Promise<TokenRow | null> {
    const r = await this.#sql.get("SELECT * FROM access_tokens WHERE token_hash = ?", [tokenHash]);
    if (!r) return null;
    const expiresTs = r.expires_ts === null ? null : Number(r.expires_ts);
    return {
      tokenHash: r.token_hash,
      userId: r.user_id,
      deviceId: r.device_id,
      createdTs: Number(r.created_ts),
      expiresTs,
      refreshHash: r.refresh_hash,
    };
  }

  async deleteToken(tokenHash: string): Promise<void> {
    await this.#sql.run("DELETE FROM access_tokens WHERE token_hash = ?", [tokenHash]);
  }

  async deleteTokensForUser(userId: string, exceptDeviceId?: string): Promise<void> {
    const tables = ["access_tokens", "refresh_tokens"];
    await this.#sql.atomic(
      exceptDeviceId === undefined
        ? tables.map((t) => [`DELETE FROM ${t} WHERE user_id = ?`, [userId]])
        : tables.map((t) => [`DELETE FROM ${t} WHERE user_id = ? AND device_id <> ?`, [userId, exceptDeviceId]]),
    );
  }

  async getProfileFields(userId: string): Promise<Record<string, unknown>> {
    const rows = await this.#sql.all("SELECT key, value FROM profile_fields WHERE user_id = ? ORDER BY key", [userId]);
    const out: Record<string, unknown> = {};
    for (const r of rows) out[r.key] = JSON.parse(r.value);
    return out;
  }

  async setProfileField(userId: string, key: string, value: unknown): Promise<void> {
    if (value === undefined)
      await this.#sql.run("DELETE FROM profile_fields WHERE user_id = ? AND key = ?", [userId, key]);
    else
      await this.#sql.run(
        `INSERT INTO profile_fields (user_id, key, value) VALUES (?, ?, ?)
         ON CONFLICT (user_id, key) DO UPDATE SET value = excluded.value`,
        [userId, key, JSON.stringify(value)],
      );
  }

  async createRegistrationToken(t: RegistrationTokenRow): Promise<void> {
    try {
      await this.#sql.run(
        "INSERT INTO registration_tokens (token, uses_allowed, pending, completed, expiry_ts) VALUES (?, ?, ?, ?, ?)",
        [t.token, t.usesAllowed, t.pending, t.completed, t.expiryTs],
      );
    } catch (e) {
      if (this.#sql.isUniqueViolation(e)) throw new AmiError("M_INVALID_PARAM", "Registration token already exists.");
      throw e;
    }
  }

  async getRegistrationToken(token: string): Promise<RegistrationTokenRow | null> {
    const r = await this.#sql.get("SELECT * FROM registration_tokens WHERE token = ?", [token]);
    return r ? regTokenFromRow(r) : null;
  }

  async consumeRegistrationToken(token: string, now: number): Promise<boolean> {
    // One conditional UPDATE: the check and the count are atomic (as Synapse, pending uses count against the
    // limit). On PostgreSQL a concurrent consumer waits on the row lock, then re-checks the WHERE on the new row.
    const changed = await this.#sql.run(
      `UPDATE registration_tokens SET completed = completed + 1
       WHERE token = ? AND (uses_allowed IS NULL OR pending + completed < uses_allowed)
         AND (expiry_ts IS NULL OR expiry_ts >= ?)`,
      [token, now],
    );
    return changed === 1;
  }

  async listRegistrationTokens(): Promise<RegistrationTokenRow[]> {
    return (await this.#sql.all("SELECT * FROM registration_tokens ORDER BY token")).map(regTokenFromRow);
  }

  async updateRegistrationToken(
    token: string,
    p: Partial<Pick<RegistrationTokenRow, "usesAllowed" | "expiryTs">>,
  ): Promise<boolean> {
    // CAST: PostgreSQL cannot infer a type for a parameter that may be NULL.
    const changed = await this.#sql.run(
      `UPDATE registration_tokens SET uses_allowed = CASE WHEN ? THEN CAST(? AS BIGINT) ELSE uses_allowed END,
       expiry_ts = CASE WHEN ? THEN CAST(? AS BIGINT) ELSE expiry_ts END WHERE token = ?`,
      [p.usesAllowed !== undefined, p.usesAllowed ?? null, p.expiryTs !== undefined, p.expiryTs ?? null, token],
    );
    return changed > 0;
  }

  async deleteRegistrationToken(token: string): Promise<void> {
    await this.#sql.run("DELETE FROM registration_tokens WHERE token = ?", [token]);
  }
}
