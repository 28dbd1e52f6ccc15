/** AuthTokenStore for both backends: refresh tokens (chained to their successor) and short-lived tokens. */
import { AmiError } from "../../../core/errors.ts";
import type { Sql } from "../sql.ts";
import type { AuthTokenStore, RefreshTokenRow, ShortTokenRow } from "../types.ts";

const refreshFromRow = (r: Record<string, unknown>): RefreshTokenRow => ({
  tokenHash: r.token_hash as string,
  userId: r.user_id as string,
  deviceId: r.device_id as string,
  createdTs: Number(r.created_ts),
  nextHash: (r.next_hash as string | null) ?? null,
});

const shortFromRow = (r: Record<string, unknown>): ShortTokenRow => ({
  tokenHash: r.token_hash as string,
  kind: r.kind as ShortTokenRow["kind"],
  userId: r.user_id as string,
  expiresTs: Number(r.expires_ts),
});

export class SqlAuthTokenStore implements AuthTokenStore {
  readonly #sql: Sql;
  constructor(sql: Sql) {
    this.#sql = sql;
  }

  async createRefreshToken(r: Omit<RefreshTokenRow, "nextHash">): Promise<void> {
    try {
      await this.#sql.run(
        "INSERT INTO refresh_tokens (token_hash, user_id, device_id, created_ts) VALUES (?, ?, ?, ?)",
        [r.tokenHash, r.userId, r.deviceId, r.createdTs],
      );
    } catch (e) {
      if (this.#sql.isForeignKeyViolation(e))
        throw new AmiError("M_UNKNOWN", `device ${r.deviceId} of ${r.userId} does not exist`);
      throw e;
    }
  }

  async getRefreshToken(tokenHash: string): Promise<RefreshTokenRow | null> {
    const r = await this.#sql.get("SELECT * FROM refresh_tokens WHERE token_hash = ?", [tokenHash]);
    return r ? refreshFromRow(r) : null;
  }

  async setRefreshTokenNext(tokenHash: string, nextHash: string): Promise<void> {
    await this.#sql.run("UPDATE refresh_tokens SET next_hash = ? WHERE token_hash = ?", [nextHash, tokenHash]);
  }

  async refreshTokensBefore(tokenHash: string): Promise<string[]> {
    const rows = await this.#sql.all("SELECT token_hash FROM refresh_tokens WHERE next_hash = ? ORDER BY token_hash", [
      tokenHash,
    ]);
    return rows.map((r) => r.token_hash as string);
  }

  async deleteRefreshTokens(tokenHashes: string[]): Promise<string[]> {
    if (tokenHashes.length === 0) return [];
    const sql = this.#sql;
    const access = await sql.all(
      `SELECT token_hash FROM access_tokens WHERE ${sql.anyOf("refresh_hash")} ORDER BY token_hash`,
      [tokenHashes],
    );
    await sql.atomic([
      [`DELETE FROM access_tokens WHERE ${sql.anyOf("refresh_hash")}`, [tokenHashes]],
      [`DELETE FROM refresh_tokens WHERE ${sql.anyOf("token_hash")}`, [tokenHashes]],
    ]);
    return access.map((r) => r.token_hash as string);
  }

  async createShortToken(t: ShortTokenRow): Promise<void> {
    try {
      await this.#sql.run("INSERT INTO short_tokens (token_hash, kind, user_id, expires_ts) VALUES (?, ?, ?, ?)", [
        t.tokenHash,
        t.kind,
        t.userId,
        t.expiresTs,
      ]);
    } catch (e) {
      if (this.#sql.isForeignKeyViolation(e)) throw new AmiError("M_UNKNOWN", `user ${t.userId} does not exist`);
      throw e;
    }
  }

  async takeShortToken(
    kind: ShortTokenRow["kind"],
    tokenHash: string,
    now: number,
    consume: boolean,
  ): Promise<ShortTokenRow | null> {
    // One statement either way: a consuming DELETE ... RETURNING lets only one of two concurrent uses have the row.
    const where = "token_hash = ? AND kind = ? AND expires_ts > ?";
    const r = await this.#sql.get(
      consume ? `DELETE FROM short_tokens WHERE ${where} RETURNING *` : `SELECT * FROM short_tokens WHERE ${where}`,
      [tokenHash, kind, now],
    );
    return r ? shortFromRow(r) : null;
  }

  async deleteExpiredShortTokens(now: number): Promise<number> {
    return this.#sql.run("DELETE FROM short_tokens WHERE expires_ts <= ?", [now]);
  }
}
