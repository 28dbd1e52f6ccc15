/** Plumbing commands the supervisor runs: `supervise` (the daemon) and `serve <service>` (one service, foreground). */
import { z } from "zod";
import { defineOp } from "../../core/ops.ts";
import { serveService } from "../serve.ts";
import { Supervisor } from "../supervisor.ts";

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
  input: z.object({ start: z.array(z.string()).default([]).describe("services to start right away") }).strict(),
  output: z.object({}),
  annotations: { readOnly: false, destructive: false, idempotent: false },
  cliOnly: true,
  hidden: true,
  async run({ start }, ctx) {
    const sup = new Supervisor(ctx);
    await sup.run(ctx.config, await ctx.registry(), ctx.configPath, start);
    return new Promise<never>(() => {});
  },
});
export const internalOps = [serveOp, superviseOp];
