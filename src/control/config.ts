/** The `control` section. */
import { z } from "zod";
import { hostSchema as host, portSchema as port } from "../core/config.ts";

/** The supervisor and its control API (`ami-streams up/down/status`, `POST /api/ops/<op>`). */
export const controlSchema = z
  .object({
    host: host.default("127.0.0.1"),
    /** Control API port (0: any free port; clients find it in <home>/run/control.json). */
    port: port.default(8470),
    /** Bearer token for the control API; generated into <home>/run/control.token when null. */
    token: z.string().min(16).nullable().default(null),
    /** How often the supervisor calls each service's GET /health. */
    healthIntervalMs: z.number().int().positive().default(1000),
    /** A service that is not healthy this long after starting is killed and restarted. */
    startTimeoutMs: z.number().int().positive().default(60000),
    /** Grace period between SIGTERM and SIGKILL when stopping a service. */
    stopGraceMs: z.number().int().positive().default(10000),
    /**
     * Restart delay after a crash: initialMs, doubling up to maxMs; back to initialMs once the service has been
     * healthy for resetAfterMs (0: at its first good health check). A small cap and a quick reset keep a service
     * that a bad request can crash up nearly all the time, instead of down for ever-longer waits.
     */
    backoff: z
      .object({
        initialMs: z.number().int().positive().default(500),
        maxMs: z.number().int().positive().default(5000),
        resetAfterMs: z.number().int().nonnegative().default(0),
      })
      .strict()
      .default({ initialMs: 500, maxMs: 5000, resetAfterMs: 0 }),
  })
  .strict();

export type ControlConfig = z.output<typeof controlSchema>;
