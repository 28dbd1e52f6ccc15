/** `<service> start|stop|status|restart`, generated for every supervised unit (our services and external programs). */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { defineOp, type OpContext, type OpDef } from "../../core/ops.ts";
import { connectControl } from "../client.ts";
import { currentStatus, ensureSupervisor, waitHealthy } from "../daemon.ts";
import { duration } from "../format.ts";
import { type ServiceStatus, serviceStatusSchema } from "../state.ts";
import type { Unit } from "../units.ts";

const changeOutput = z.object({
  changed: z.boolean().describe("false when it was a no-op (already running / already stopped)"),
  message: z.string(),
  status: serviceStatusSchema,
  describe: z.array(z.string()),
});

async function statusOf(ctx: OpContext, name: string): Promise<ServiceStatus> {
  const s = (await currentStatus(ctx)).services.find((x) => x.name === name);
  if (!s) throw new AmiError("M_NOT_FOUND", `unknown service '${name}'`);
  return s;
}

const down = (s: ServiceStatus) => s.state === "stopped" || s.state === "failed";

const line = (s: ServiceStatus) =>
  down(s)
    ? `${s.name}: ${s.state}${s.lastExit ? ` (last: ${s.lastExit})` : ""}${s.failure ? `: ${s.failure}` : ""}`
    : `${s.name}: ${s.state} (pid ${s.pid ?? "-"}, up ${duration(s.uptimeS)}, restarts ${s.restarts}) ${s.url}`;

export function serviceOps(def: Unit): OpDef<any, any>[] {
  const n = def.name;
  const start = async (ctx: OpContext, restart: boolean, workers?: number) => {
    if (!def.enabled(ctx.config)) {
      const key = def.kind === "program" ? `programs.${n}.enabled` : `${n}.enabled`;
      throw new AmiError("AMI_INVALID_CONFIG", `${n} is disabled in the config (${key}: false)`);
    }
    // Checked here too (against this command's config) so a bad count fails before anything starts.
    if (workers !== undefined) def.withWorkers?.(ctx.config, workers);
    const { client, spawned } = await ensureSupervisor(ctx, workers === undefined ? [n] : []);
    let changed = spawned && workers === undefined;
    if (!changed) {
      const r = await client.request<{ changed: boolean }>(
        "POST",
        `/api/services/${n}/${restart ? "restart" : "start"}`,
        workers === undefined ? undefined : { workers },
      );
      changed = r.changed;
    }
    await waitHealthy(client, [n], ctx);
    const status = await statusOf(ctx, n);
    let message = changed
      ? `${n} ${restart ? "restarted" : "started"}${workers && workers > 1 ? ` with ${workers} workers` : ""}: ${status.url}`
      : `${n} is already running (pid ${status.pid})${workers ? `; 'ami-streams ${n} restart --workers ${workers}' applies the new count` : ""}`;
    // The supervisor re-reads its config file on start/restart; a different file given to this command is not it.
    const want = def.url(ctx.config);
    if (status.url !== want) {
      message += `\nnote: the supervisor's config puts ${n} at ${status.url}, this command's config at ${want}; to switch config files run 'ami-streams down' then 'ami-streams up'`;
    }
    return { changed, message, status, describe: def.describe(ctx.config, ctx.paths) };
  };
  // A service that runs as several processes takes --workers (the supervisor keeps it for later restarts).
  const flagShape = Object.fromEntries(
    Object.entries(def.startFlags ?? {}).map(([k, d]) => [k, z.boolean().optional().describe(d)]),
  );
  const startInput0 = def.withWorkers
    ? z
        .object({
          workers: z
            .number()
            .int()
            .min(1)
            .max(64)
            .optional()
            .describe(`processes of ${n} sharing its port (default: the config's ${n}.workers)`),
        })
        .strict()
    : z.object({}).strict();
  const startInput = startInput0.extend(flagShape).strict();
  const writeFlags = (ctx: OpContext, i: Record<string, unknown>): void => {
    if (!def.startFlags) return;
    const flags = Object.fromEntries(Object.keys(def.startFlags).map((k) => [k, i[k] === true]));
    writeFileSync(join(ctx.paths.run, `${n}.flags.json`), JSON.stringify(flags));
  };
  const human = (o: z.infer<typeof changeOutput>) => [o.message, ...(o.changed ? o.describe : [])].join("\n");
  return [
    defineOp({
      name: `${n}.start`,
      summary: `Start ${n} under the supervisor (no-op when running)`,
      description: def.summary,
      input: startInput,
      output: changeOutput,
      annotations: { readOnly: false, destructive: false, idempotent: true },
      human,
      run: (i: { workers?: number }, ctx) => {
        writeFlags(ctx, i);
        return start(ctx, false, i.workers);
      },
    }),
    defineOp({
      name: `${n}.restart`,
      summary: `Restart ${n} (starts it when stopped)`,
      input: startInput,
      output: changeOutput,
      annotations: { readOnly: false, destructive: true, idempotent: false },
      human,
      run: (i: { workers?: number }, ctx) => {
        writeFlags(ctx, i);
        return start(ctx, true, i.workers);
      },
    }),
    defineOp({
      name: `${n}.stop`,
      summary: `Stop ${n} (no-op when stopped)`,
      input: z.object({}).strict(),
      output: changeOutput,
      annotations: { readOnly: false, destructive: true, idempotent: true },
      human,
      async run(_i, ctx) {
        const client = connectControl(ctx.config, ctx.paths);
        let changed = false;
        if (client) changed = (await client.request<{ changed: boolean }>("POST", `/api/services/${n}/stop`)).changed;
        const status = await statusOf(ctx, n);
        return { changed, message: changed ? `${n} stopped` : `${n} is not running`, status, describe: [] };
      },
    }),
    defineOp({
      name: `${n}.status`,
      summary: `Show ${n}'s state, pid, uptime, restarts and url (CLI exit code 3 when not running)`,
      input: z.object({}).strict(),
      output: serviceStatusSchema.extend({
        detail: z.array(z.string()).optional().describe("the running service's own figures (some services)"),
      }),
      annotations: { readOnly: true, destructive: false, idempotent: true },
      human: (s) => [line(s), ...(s.detail ?? []).map((l) => `  ${l}`)].join("\n"),
      exitCode: (s) => (down(s) ? 3 : 0),
      async run(_i, ctx) {
        const s = await statusOf(ctx, n);
        if (!def.statusDetail || down(s)) return s;
        const detail = await def.statusDetail(ctx.config).catch(() => undefined);
        return detail ? { ...s, detail } : s;
      },
    }),
  ];
}
