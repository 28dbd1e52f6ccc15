/** ReportStore for both backends: content reports (spec "Reporting content"), kept for the admin API. */
import { reportFromRow } from "../rows.ts";
import type { Sql, SqlParam } from "../sql.ts";
import type { ReportQuery, ReportRow, ReportStore } from "../types.ts";

export class SqlReportStore implements ReportStore {
  readonly #sql: Sql;
  constructor(sql: Sql) {
    this.#sql = sql;
  }

  async addReport(r: Omit<ReportRow, "id">): Promise<number> {
    const row = await this.#sql.get(
      `INSERT INTO reports (kind, received_ts, user_id, room_id, event_id, target_user_id, reason, score)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
      [r.kind, r.receivedTs, r.userId, r.roomId, r.eventId, r.targetUserId, r.reason, r.score],
    );
    return Number(row.id);
  }

  async getReport(kind: ReportRow["kind"], id: number): Promise<ReportRow | null> {
    const r = await this.#sql.get("SELECT * FROM reports WHERE kind = ? AND id = ?", [kind, id]);
    return r ? reportFromRow(r) : null;
  }

  async listReports(q: ReportQuery): Promise<{ rows: ReportRow[]; total: number }> {
    const conds = ["kind = ?"];
    const params: SqlParam[] = [q.kind];
    for (const [column, value] of [
      ["user_id", q.userId],
      ["room_id", q.roomId],
      ["target_user_id", q.targetUserId],
    ] as const) {
      if (value === undefined) continue;
      conds.push(`${column} = ?`);
      params.push(value);
    }
    const where = `WHERE ${conds.join(" AND ")}`;
    const d = q.dir === "f" ? "ASC" : "DESC";
    const rows = await this.#sql.all(`SELECT * FROM reports ${where} ORDER BY id ${d} LIMIT ? OFFSET ?`, [
      ...params,
      Math.max(0, q.limit),
      Math.max(0, q.offset),
    ]);
    const total = Number((await this.#sql.get(`SELECT count(*) AS n FROM reports ${where}`, params)).n);
    return { rows: rows.map(reportFromRow), total };
  }

  async deleteReport(kind: ReportRow["kind"], id: number): Promise<boolean> {
    return (await this.#sql.run("DELETE FROM reports WHERE kind = ? AND id = ?", [kind, id])) > 0;
  }
}
