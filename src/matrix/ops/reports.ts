/** `ami-streams matrix report list|show|delete` (MCP: matrix_report_*): content reports users made. */
import { z } from "zod";
import { defineOp } from "../../core/ops.ts";
import { asService } from "./client.ts";

const A1 = "/_synapse/admin/v1";
const kind = z.enum(["event", "user"]).default("event").describe("event reports or user reports");
const base = (k: "event" | "user") => `${A1}/${k}_reports`;

const report = z.object({
  id: z.number(),
  receivedTs: z.number(),
  reporter: z.string(),
  reason: z.string().nullable(),
  roomId: z.string().nullable(),
  eventId: z.string().nullable(),
  /** The reported user, or the reported event's sender. */
  target: z.string().nullable(),
});
type Report = z.infer<typeof report>;

/** Synapse's event or user report object -> ours. */
function fromApi(r: Record<string, unknown>): Report {
  const s = (v: unknown) => (typeof v === "string" ? v : null);
  return {
    id: r.id as number,
    receivedTs: r.received_ts as number,
    reporter: r.user_id as string,
    reason: s(r.reason),
    roomId: s(r.room_id),
    eventId: s(r.event_id),
    target: s(r.sender) ?? s(r.target_user_id),
  };
}

const line = (r: Report) =>
  `#${r.id}  ${new Date(r.receivedTs).toISOString()}  by ${r.reporter}  against ${r.target ?? "-"}${r.eventId ? `  ${r.roomId} ${r.eventId}` : ""}  ${JSON.stringify(r.reason ?? "")}`;

export const reportList = defineOp({
  name: "matrix.report.list",
  summary: "List content reports, newest first",
  input: z.object({ kind, limit: z.number().int().min(1).max(1000).default(100) }),
  output: z.object({ reports: z.array(report), total: z.number() }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  human: (o) => [...o.reports.map(line), `${o.total} report(s)`].join("\n"),
  async run(i, ctx) {
    const r = await asService(ctx, "GET", `${base(i.kind)}?limit=${i.limit}`);
    return { reports: r[`${i.kind}_reports`].map(fromApi), total: r.total };
  },
});

export const reportShow = defineOp({
  name: "matrix.report.show",
  summary: "Show one content report (for an event report, with the reported event)",
  input: z.object({ id: z.number().int().min(0), kind }),
  output: report.extend({ event: z.record(z.string(), z.unknown()).nullable() }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  positional: ["id"],
  human: (o) => [line(o), ...(o.event ? [JSON.stringify(o.event, null, 2)] : [])].join("\n"),
  async run(i, ctx) {
    const r = await asService(ctx, "GET", `${base(i.kind)}/${i.id}`);
    return { ...fromApi(r), event: r.event_json ?? null };
  },
});

export const reportDelete = defineOp({
  name: "matrix.report.delete",
  summary: "Delete a content report (once handled)",
  input: z.object({ id: z.number().int().min(0), kind }),
  output: z.object({ id: z.number(), deleted: z.literal(true) }),
  annotations: { readOnly: false, destructive: true, idempotent: false },
  positional: ["id"],
  human: (o) => `report #${o.id} deleted`,
  async run(i, ctx) {
    await asService(ctx, "DELETE", `${base(i.kind)}/${i.id}`);
    return { id: i.id, deleted: true as const };
  },
});
