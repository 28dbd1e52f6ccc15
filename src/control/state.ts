/** Shapes shared by the supervisor, its control API, the CLI and the monitor. */
import { z } from "zod";

/**
 * orphaned: a service process of this runtime home with no supervisor (it died); `down` stops it.
 * failed: it exited and its restart policy (external programs: on-failure, never) leaves it down.
 */
export const serviceStates = [
  "stopped",
  "failed",
  "starting",
  "running",
  "unhealthy",
  "backoff",
  "stopping",
  "orphaned",
] as const;
export type ServiceState = (typeof serviceStates)[number];

export const serviceStatusSchema = z.object({
  name: z.string(),
  /** service: ours (`ami-streams serve <name>`); program: an external program (`programs:` or a feature's). */
  kind: z.enum(["service", "program"]),
  state: z.enum(serviceStates),
  pid: z.number().int().nullable(),
  /** Seconds since the current process started (null when not running). */
  uptimeS: z.number().nullable(),
  restarts: z.number().int(),
  url: z.string(),
  enabled: z.boolean(),
  lastExit: z.string().nullable(),
  /** Why the last start failed (not healthy within its readiness time, or gave up by policy); null once healthy. */
  failure: z.string().nullable(),
  /** Where the monitor reads key figures (JSON of flat numbers); null: none. */
  statsUrl: z.string().nullable(),
});
export type ServiceStatus = z.infer<typeof serviceStatusSchema>;

export const supervisorStatusSchema = z.object({
  supervisor: z.object({
    running: z.boolean(),
    pid: z.number().int().nullable(),
    url: z.string().nullable(),
    uptimeS: z.number().nullable(),
  }),
  services: z.array(serviceStatusSchema),
  /** Built-in alerts (src/alerts/): firing now, of which acknowledged, raised since start. */
  alerts: z.object({ firing: z.number().int(), acked: z.number().int(), total: z.number().int() }).optional(),
});
export type SupervisorStatus = z.infer<typeof supervisorStatusSchema>;

/** Written by the supervisor into <home>/run/control.json so clients find it (port may be 0 = ephemeral). */
export interface ControlInfo {
  pid: number;
  url: string;
  startedAt: number;
}
