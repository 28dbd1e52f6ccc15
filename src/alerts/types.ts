/** An alert's shape, shared by the supervisor's manager, the control API and the ops. */
import { z } from "zod";

export const alertKinds = [
  "service_down",
  "restart_loop",
  "disk_full",
  "stream_dropped",
  "error_rate",
  "backup_failed",
] as const;

/** What code raises (`raise()`): `key` dedupes (one alert per key, however often raised). */
export const alertInputSchema = z
  .object({
    kind: z.string().regex(/^[a-z][a-z0-9_]*$/),
    key: z.string().min(1).max(200),
    severity: z.enum(["critical", "warning", "info"]).default("warning"),
    summary: z.string().min(1).max(2000),
  })
  .strict();
export type AlertInput = z.input<typeof alertInputSchema>;

export const alertSchema = z.object({
  id: z.string(),
  kind: z.string(),
  key: z.string(),
  severity: z.enum(["critical", "warning", "info"]),
  summary: z.string(),
  state: z.enum(["firing", "resolved"]),
  acked: z.boolean(),
  firstAt: z.string(),
  lastAt: z.string(),
  resolvedAt: z.string().nullable(),
  /** Notifications sent for it (firing, repeats, resolved). */
  notifications: z.number().int(),
});
export type Alert = z.infer<typeof alertSchema>;

export const alertCountsSchema = z.object({
  firing: z.number().int(),
  acked: z.number().int(),
  total: z.number().int(),
});
export type AlertCounts = z.infer<typeof alertCountsSchema>;
