/**
 * Synapse's report admin API: event reports (docs/admin_api/event_reports.md) and user reports
 * (synapse/rest/admin/user_reports.py): list with filters and paging, show, delete. Room reports are recorded
 * (client/reports.ts) but, as in Synapse, have no admin listing.
 */
import { AmiError } from "../../core/errors.ts";
import type { Homeserver } from "../hs.ts";
import { json, type MatrixRequest, type Route } from "../http/types.ts";
import type { ReportRow } from "../store/types.ts";
import { adminRoute, nextToken, pageQuery } from "./admin-kit.ts";

/** Synapse's event report object: the report, the room's name and canonical alias, the reported event's sender. */
async function eventReportJson(hs: Homeserver, r: ReportRow) {
  const [name, alias] = r.roomId
    ? await Promise.all([
        hs.store.events.getCurrentStateEvent(r.roomId, "m.room.name", ""),
        hs.store.events.getCurrentStateEvent(r.roomId, "m.room.canonical_alias", ""),
      ])
    : [null, null];
  const str = (v: unknown) => (typeof v === "string" ? v : null);
  return {
    id: r.id,
    received_ts: r.receivedTs,
    room_id: r.roomId,
    name: str(name?.pdu.content?.name),
    event_id: r.eventId,
    user_id: r.userId,
    reason: r.reason,
    score: r.score,
    sender: r.targetUserId,
    canonical_alias: str(alias?.pdu.content?.alias),
  };
}

const userReportJson = (r: ReportRow) => ({
  id: r.id,
  received_ts: r.receivedTs,
  target_user_id: r.targetUserId,
  user_id: r.userId,
  reason: r.reason,
});

/** The path's report ID: a non-negative integer (400 otherwise, as Synapse). */
function reportId(req: MatrixRequest): number {
  const v = req.params.reportId;
  if (!/^\d{1,15}$/.test(v))
    throw new AmiError("M_INVALID_PARAM", "The report_id parameter must be a string representing a positive integer.");
  return Number(v);
}

async function listReports(req: MatrixRequest, kind: "event" | "user") {
  const q = req.query;
  const { offset, limit, dir } = pageQuery(q, "b");
  const opt = (name: string) => q.get(name) || undefined;
  return {
    offset,
    ...(await req.hs.store.reports.listReports({
      kind,
      offset,
      limit,
      dir,
      userId: opt("user_id"),
      roomId: kind === "event" ? opt("room_id") : undefined,
      targetUserId: opt(kind === "event" ? "event_sender_user_id" : "target_user_id"),
    })),
  };
}

async function getReport(req: MatrixRequest, kind: "event" | "user"): Promise<ReportRow> {
  const r = await req.hs.store.reports.getReport(kind, reportId(req));
  if (!r) throw new AmiError("M_NOT_FOUND", kind === "event" ? "Event report not found" : "User report not found");
  return r;
}

async function deleteReport(req: MatrixRequest, kind: "event" | "user") {
  if (!(await req.hs.store.reports.deleteReport(kind, reportId(req))))
    throw new AmiError("M_NOT_FOUND", kind === "event" ? "Event report not found" : "User report not found");
  return json({});
}

export const routes: Route[] = [
  /** GET /_synapse/admin/v1/event_reports */
  adminRoute("GET", ["/_synapse/admin/v1/event_reports"], async (req) => {
    const { offset, rows, total } = await listReports(req, "event");
    const event_reports = [];
    for (const r of rows) event_reports.push(await eventReportJson(req.hs, r));
    return json({ event_reports, total, ...nextToken(offset, rows.length, total) });
  }),
  /** GET /_synapse/admin/v1/event_reports/{reportId}: with the reported event (`event_json`, federation format) */
  adminRoute("GET", ["/_synapse/admin/v1/event_reports/{reportId}"], async (req) => {
    const r = await getReport(req, "event");
    const ev = r.eventId ? await req.hs.store.events.getEvent(r.eventId) : null;
    return json({ ...(await eventReportJson(req.hs, r)), event_json: ev?.pdu ?? null });
  }),
  /** DELETE /_synapse/admin/v1/event_reports/{reportId} */
  adminRoute("DELETE", ["/_synapse/admin/v1/event_reports/{reportId}"], (req) => deleteReport(req, "event")),
  /** GET /_synapse/admin/v1/user_reports */
  adminRoute("GET", ["/_synapse/admin/v1/user_reports"], async (req) => {
    const { offset, rows, total } = await listReports(req, "user");
    return json({ user_reports: rows.map(userReportJson), total, ...nextToken(offset, rows.length, total) });
  }),
  /** GET /_synapse/admin/v1/user_reports/{reportId} */
  adminRoute("GET", ["/_synapse/admin/v1/user_reports/{reportId}"], async (req) => {
    return json(userReportJson(await getReport(req, "user")));
  }),
  /** DELETE /_synapse/admin/v1/user_reports/{reportId} */
  adminRoute("DELETE", ["/_synapse/admin/v1/user_reports/{reportId}"], (req) => deleteReport(req, "user")),
];
