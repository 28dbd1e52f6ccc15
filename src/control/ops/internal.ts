/** Plumbing commands the supervisor runs: `supervise` (the daemon) and `serve <service>` (one service, foreground). */
import { z } from "zod";
import { defineOp } from "../../core/ops.ts";
import { serveService } from "../serve.ts";
import { Supervisor } from "../supervisor.ts";
import { units } from "../units.ts";

export const serveOp = defineOp({
  name: "serve",
  summary: "Run one service in the foreground until SIGTERM/SIGINT (the supervisor runs this per service)",
  input: z.object({ service: z.string() }).strict(),
  output: z.object({ service: z.string(), url: z.string() }),
  annotations: { readOnly: false, destructive: false, idempotent: false },
  positional: ["service"],
  cliOnly: true,
  hidden: true,
  async run({ service }, ctx) {
    return { service, url: await serveService(service, ctx.config, ctx.log, ctx.signal, ctx.configPath) };
  },
});

export const superviseOp = defineOp({
  name: "supervise",
  summary: "Run the supervisor daemon in the foreground (`up` starts it detached)",
  description:
    "In the foreground until SIGTERM/SIGINT, which stops every service first. `--all` starts every enabled service " +
    "and program, as `up` does: the entry point of the container image and of the systemd unit (`deploy`).",
  input: z
    .object({
      start: z.array(z.string()).default([]).describe("services to start right away"),
      all: z.boolean().default(false).describe("start every enabled service and program"),
    })
    .strict(),
  output: z.object({}),
  annotations: { readOnly: false, destructive: false, idempotent: false },
  cliOnly: true,
  hidden: true,
  async run({ start, all }, ctx) {
    const sup = new Supervisor(ctx);
    const names = all
      ? units(ctx.config)
          .filter((u) => u.enabled(ctx.config))
          .map((u) => u.name)
      : [];
    await sup.run(ctx.config, await ctx.registry(), ctx.configPath, [...new Set([...start, ...names])]);
    return new Promise<never>(() => {});
  },
});
export const internalOps = [serveOp, superviseOp];
