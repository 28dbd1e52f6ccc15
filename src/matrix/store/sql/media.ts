/** MediaStore for both backends: the rows describing uploads (their bytes live in the blob store). */
import { createHash } from "node:crypto";
import { AmiError } from "../../../core/errors.ts";
import { mediaFromRow, pendingMediaFromRow } from "../rows.ts";
import type { Sql, SqlParam } from "../sql.ts";
import type { MediaQuery, MediaRow, MediaStore, PendingMediaRow, UrlPreviewRow } from "../types.ts";

const INSERT_MEDIA = `INSERT INTO media (media_id, uploader, content_type, filename, size, sha256, created_ts,
  quarantined_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`;
/** url_previews' key: a URL has no length limit, a PostgreSQL index entry has. */
const urlHash = (url: string) => createHash("sha256").update(url).digest("hex");

const mediaParams = (m: MediaRow): SqlParam[] => [
  m.mediaId,
  m.uploader,
  m.contentType,
  m.filename,
  m.size,
  m.sha256,
  m.createdTs,
  m.quarantinedBy ?? null,
];

export class SqlMediaStore implements MediaStore {
  readonly #sql: Sql;
  constructor(sql: Sql) {
    this.#sql = sql;
  }

  async putMedia(m: MediaRow): Promise<void> {
    await this.#unique(this.#sql.run(INSERT_MEDIA, mediaParams(m)));
  }

  async getMedia(mediaId: string): Promise<MediaRow | null> {
    const r = await this.#sql.get("SELECT * FROM media WHERE media_id = ?", [mediaId]);
    return r ? mediaFromRow(r) : null;
  }

  async uploadedBytesSince(uploader: string, sinceTs: number): Promise<number> {
    const r = await this.#sql.get("SELECT SUM(size) AS n FROM media WHERE uploader = ? AND created_ts >= ?", [
      uploader,
      sinceTs,
    ]);
    return r?.n == null ? 0 : Number(r.n);
  }

  async createPending(p: PendingMediaRow, maxPending: number, now: number): Promise<boolean> {
    // The count and the insert are one statement, so two creations at once cannot both take the last place.
    const [, inserted] = await this.#sql.atomic([
      ["DELETE FROM media_pending WHERE expires_ts < ?", [now]],
      [
        `INSERT INTO media_pending (media_id, user_id, created_ts, expires_ts)
         SELECT ?, ?, CAST(? AS BIGINT), CAST(? AS BIGINT) WHERE (SELECT COUNT(*) FROM media_pending WHERE user_id = ? AND expires_ts >= ?) < ?`,
        [p.mediaId, p.userId, p.createdTs, p.expiresTs, p.userId, now, maxPending],
      ],
    ]);
    return inserted === 1;
  }

  async getPending(mediaId: string): Promise<PendingMediaRow | null> {
    const r = await this.#sql.get("SELECT * FROM media_pending WHERE media_id = ?", [mediaId]);
    return r ? pendingMediaFromRow(r) : null;
  }

  async firstPendingExpiry(userId: string, now: number): Promise<number | null> {
    const r = await this.#sql.get(
      "SELECT MIN(expires_ts) AS t FROM media_pending WHERE user_id = ? AND expires_ts >= ?",
      [userId, now],
    );
    return r?.t == null ? null : Number(r.t);
  }

  async completePending(m: MediaRow): Promise<void> {
    await this.#unique(
      this.#sql.atomic([
        [INSERT_MEDIA, mediaParams(m)],
        ["DELETE FROM media_pending WHERE media_id = ?", [m.mediaId]],
      ]),
    );
  }

  async #unique<T>(write: Promise<T>): Promise<T> {
    try {
      return await write;
    } catch (e) {
      if (this.#sql.isUniqueViolation(e)) throw new AmiError("M_CANNOT_OVERWRITE_MEDIA", "Media ID already exists.");
      throw e;
    }
  }

  async listMedia(q: MediaQuery): Promise<{ rows: MediaRow[]; total: number }> {
    const conds: string[] = [];
    const params: SqlParam[] = [];
    if (q.uploader !== undefined) {
      conds.push("uploader = ?");
      params.push(q.uploader);
    }
    if (q.sha256 !== undefined) {
      conds.push("sha256 = ?");
      params.push(q.sha256);
    }
    if (q.quarantined !== undefined)
      conds.push(q.quarantined ? "quarantined_by IS NOT NULL" : "quarantined_by IS NULL");
    if (q.mediaIds !== undefined) {
      conds.push(this.#sql.anyOf("media_id"));
      params.push(q.mediaIds);
    }
    if (q.beforeTs !== undefined) {
      conds.push("created_ts < ?");
      params.push(q.beforeTs);
    }
    if (q.sizeGt !== undefined) {
      conds.push("size > ?");
      params.push(q.sizeGt);
    }
    const where = conds.length ? `WHERE ${conds.join(" AND ")}` : "";
    const d = q.dir === "f" ? "ASC" : "DESC";
    const rows = await this.#sql.all(
      `SELECT * FROM media ${where} ORDER BY created_ts ${d}, media_id ${d} LIMIT ? OFFSET ?`,
      [...params, Math.max(0, q.limit ?? 1_000_000), Math.max(0, q.offset ?? 0)],
    );
    const total = Number((await this.#sql.get(`SELECT count(*) AS n FROM media ${where}`, params)).n);
    return { rows: rows.map(mediaFromRow), total };
  }

  async setQuarantined(mediaIds: string[], by: string | null): Promise<number> {
    return this.#sql.run(`UPDATE media SET quarantined_by = ? WHERE ${this.#sql.anyOf("media_id")}`, [by, mediaIds]);
  }

  async deleteMedia(mediaId: string): Promise<boolean> {
    return (await this.#sql.run("DELETE FROM media WHERE media_id = ?", [mediaId])) > 0;
  }

  async getUrlPreview(url: string, now: number): Promise<UrlPreviewRow | null> {
    // A preview whose image was deleted or quarantined since is a miss: the next fetch stores a fresh image.
    const r = await this.#sql.get(
      `SELECT p.* FROM url_previews p LEFT JOIN media m ON m.media_id = p.media_id
        WHERE p.url_hash = ? AND p.url = ? AND p.expires_ts > ?
          AND (p.media_id IS NULL OR (m.media_id IS NOT NULL AND m.quarantined_by IS NULL))`,
      [urlHash(url), url, now],
    );
    return r
      ? {
          url: r.url,
          og: r.og,
          mediaId: r.media_id ?? null,
          downloadTs: Number(r.download_ts),
          expiresTs: Number(r.expires_ts),
        }
      : null;
  }

  async putUrlPreview(p: UrlPreviewRow, now: number): Promise<void> {
    // The purge walks url_previews_expiry: with one on every write, it deletes what expired since the last write.
    // Two statements, not one transaction: nothing needs them together, and workers purging at once hold no lock
    // across them.
    await this.#sql.run("DELETE FROM url_previews WHERE expires_ts <= ?", [now]);
    await this.#sql.run(
      `INSERT INTO url_previews (url_hash, url, og, media_id, download_ts, expires_ts) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (url_hash) DO UPDATE SET url = excluded.url, og = excluded.og, media_id = excluded.media_id,
         download_ts = excluded.download_ts, expires_ts = excluded.expires_ts`,
      [urlHash(p.url), p.url, p.og, p.mediaId, p.downloadTs, p.expiresTs],
    );
  }
}
