/** `up`, `down`, `status`: the whole fleet of services under one supervisor. */
import { z } from "zod";
import { defineOp } from "../../core/ops.ts";
import { currentStatus, ensureSupervisor, stopSupervisor, waitHealthy } from "../daemon.ts";
import { duration, table } from "../format.ts";
import { type SupervisorStatus, supervisorStatusSchema } from "../state.ts";
import { units } from "../units.ts";

export function statusTable(st: SupervisorStatus): string {
  const head = st.supervisor.running
    ? `supervisor: running (pid ${st.supervisor.pid}, ${st.supervisor.url}, up ${duration(st.supervisor.uptimeS)})`
    : "supervisor: not running";
  if (st.services.length === 0) return `${head}\n(no services defined)`;
  const rows = st.services.map((s) => [
    s.name,
    s.enabled ? s.state : `${s.state} (disabled)`,
    s.pid ? String(s.pid) : "-",
    duration(s.uptimeS),
    String(s.restarts),
    s.url,
  ]);
  // Why a start failed (readiness, restart policy) is worth a line of its own, under the table.
  const notes = st.services.filter((s) => s.failure).map((s) => `${s.name}: ${s.failure}`);
  return [head, table(["SERVICE", "STATE", "PID", "UPTIME", "RESTARTS", "URL"], rows), ...notes].join("\n");
}

export const statusOp = defineOp({
  name: "status",
  summary: "Show the supervisor and every service: state, pid, uptime, restarts, url",
  input: z.object({}).strict(),
  output: supervisorStatusSchema,
  annotations: { readOnly: true, destructive: false, idempotent: true },
  human: statusTable,
  run: async (_i, ctx) => currentStatus(ctx),
});

const upOutput = z.object({
  started: z.array(z.string()).describe("services this call started"),
  alreadyRunning: z.array(z.string()),
  services: z.array(z.object({ name: z.string(), url: z.string(), describe: z.array(z.string()) })),
});

export const upOp = defineOp({
  name: "up",
  summary: "Start the supervisor and every enabled service and program; return once all are healthy",
  description:
    "Starts a detached supervisor daemon if none is running, starts each enabled service under it, waits for their " +
    "health checks and prints how to reach them. Services already running are left alone.",
  input: z.object({}).strict(),
  output: upOutput,
  annotations: { readOnly: false, destructive: false, idempotent: true },
  human: (o) =>
    [
      ...(o.started.length === 0 ? ["everything is already running"] : []),
      ...o.services.flatMap((s) => s.describe),
    ].join("\n"),
  async run(_i, ctx) {
    const all = units(ctx.config);
    const enabled = all.filter((s) => s.enabled(ctx.config)).map((s) => s.name);
    const { client, spawned } = await ensureSupervisor(ctx, enabled);
    const before = spawned
      ? []
      : (await currentStatus(ctx)).services.filter((s) => s.state !== "stopped" && s.state !== "failed");
    const alreadyRunning = before.filter((s) => enabled.includes(s.name)).map((s) => s.name);
    const started = enabled.filter((n) => !alreadyRunning.includes(n));
    if (!spawned) for (const n of started) await client.request("POST", `/api/services/${n}/start`);
    await waitHealthy(client, enabled, ctx);
    return {
      started,
      alreadyRunning,
      services: all
        .filter((s) => enabled.includes(s.name))
        .map((s) => ({ name: s.name, url: s.url(ctx.config), describe: s.describe(ctx.config, ctx.paths) })),
    };
  },
});

export const downOp = defineOp({
  name: "down",
  summary: "Stop every service and program (stop signal, then SIGKILL after the grace period) and the supervisor",
  input: z.object({}).strict(),
  output: z.object({ stopped: z.boolean().describe("false when nothing was running") }),
  annotations: { readOnly: false, destructive: true, idempotent: true },
  human: (o) => (o.stopped ? "stopped all services and the supervisor" : "nothing is running"),
  run: async (_i, ctx) => ({ stopped: await stopSupervisor(ctx) }),
});
