/** `ami-streams alerts list|ack`: the running supervisor's alert book, over its control API. */
import { z } from "zod";
import { connectControl } from "../control/client.ts";
import { AmiError } from "../core/errors.ts";
import { defineOp, type OpContext } from "../core/ops.ts";
import { alertCountsSchema, alertSchema } from "./types.ts";

function supervisor(ctx: OpContext) {
  const c = connectControl(ctx.config, ctx.paths);
  if (!c) throw new AmiError("AMI_NOT_RUNNING", "the supervisor is not running (alerts live there): `ami-streams up`");
  return c;
}

export const alertsList = defineOp({
  name: "alerts.list",
  summary: "Built-in alerts firing now (service down, restart loop, disk, stream dropped, error rate, backup)",
  description: "--all adds the recently resolved ones. Acknowledge with `alerts ack <id>` to stop repeats.",
  input: z.object({ all: z.boolean().default(false).describe("include resolved alerts") }).strict(),
  output: z.object({ alerts: z.array(alertSchema), counts: alertCountsSchema }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  human: (o) =>
    o.alerts.length === 0
      ? "no alerts"
      : o.alerts
          .map(
            (a) =>
              `${a.id}  ${a.state}${a.acked ? " (acked)" : ""}  ${a.severity}  ${a.kind}  ${a.summary}  since ${a.firstAt}`,
          )
          .join("\n"),
  async run({ all }, ctx) {
    return supervisor(ctx).request("GET", `/api/alerts${all ? "?all=1" : ""}`);
  },
});

export const alertsAck = defineOp({
  name: "alerts.ack",
  summary: "Acknowledge a firing alert: no more repeat notifications until it resolves and fires again",
  input: z.object({ id: z.string().min(1).describe("alert id from `alerts list`, e.g. a3") }).strict(),
  output: z.object({ alert: alertSchema }),
  positional: ["id"],
  annotations: { readOnly: false, destructive: false, idempotent: true },
  human: (o) => `acknowledged ${o.alert.id}: ${o.alert.summary}`,
  async run({ id }, ctx) {
    return supervisor(ctx).request("POST", "/api/alerts/ack", { id });
  },
});

export const alertsOps = [alertsList, alertsAck];
