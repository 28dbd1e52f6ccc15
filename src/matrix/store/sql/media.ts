/** MediaStore for both backends: the rows describing uploads (their bytes live in the blob store). */
import { AmiError } from "../../../core/errors.ts";
import { mediaFromRow } from "../rows.ts";
import type { Sql } from "../sql.ts";
import type { MediaRow, MediaStore } from "../types.ts";

export class SqlMediaStore implements MediaStore {
  readonly #sql: Sql;
  constructor(sql: Sql) {
    this.#sql = sql;
  }

  async putMedia(m: MediaRow): Promise<void> {
    try {
      await this.#sql.run(
        `INSERT INTO media (media_id, uploader, content_type, filename, size, sha256, created_ts)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
        [m.mediaId, m.uploader, m.contentType, m.filename, m.size, m.sha256, m.createdTs],
      );
    } catch (e) {
      if (this.#sql.isUniqueViolation(e)) throw new AmiError("M_CANNOT_OVERWRITE_MEDIA", "Media ID already exists.");
      throw e;
    }
  }

  async getMedia(mediaId: string): Promise<MediaRow | null> {
    const r = await this.#sql.get("SELECT * FROM media WHERE media_id = ?", [mediaId]);
    return r ? mediaFromRow(r) : null;
  }
}
