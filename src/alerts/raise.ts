/**
 * The seam other code raises alerts through (e.g. a failed backup): from any process, it reaches the running
 * supervisor's alert book over the control API. Returns false (and logs) when no supervisor runs to take it.
 *
 *   await raise(ctx, { kind: "backup_failed", key: "backup_failed", severity: "critical", summary: "pg_dump: ..." });
 *   await resolve(ctx, "backup_failed"); // the next backup worked
 */
import { connectControl } from "../control/client.ts";
import type { OpContext } from "../core/ops.ts";
import type { AlertInput } from "./types.ts";

/** What raising needs of an op context (a service has these too). */
export type AlertContext = Pick<OpContext, "config" | "paths" | "log">;

export async function raise(ctx: AlertContext, alert: AlertInput): Promise<boolean> {
  const c = connectControl(ctx.config, ctx.paths);
  if (!c) {
    ctx.log.warn("alert not raised: no supervisor running", { kind: alert.kind, summary: alert.summary });
    return false;
  }
  await c.request("POST", "/api/alerts/raise", alert, 10_000);
  return true;
}

export async function resolve(ctx: AlertContext, key: string): Promise<boolean> {
  const c = connectControl(ctx.config, ctx.paths);
  if (!c) return false;
  return (await c.request<{ resolved: boolean }>("POST", "/api/alerts/resolve", { key }, 10_000)).resolved;
}
