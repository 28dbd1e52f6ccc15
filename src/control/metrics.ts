/** Prometheus text exposition for the supervisor's GET /metrics (convention: src/core/metrics.ts). */
import { family, processMetrics } from "../core/metrics.ts";
import type { SupervisorStatus } from "./state.ts";

export function supervisorMetrics(s: SupervisorStatus, extra: string[] = []): string {
  const per = (pick: (x: SupervisorStatus["services"][number]) => number) =>
    s.services.map((x) => [{ service: x.name }, pick(x)] as const);
  const out: string[] = [
    ...family(
      "ami_supervisor_uptime_seconds",
      "gauge",
      "Seconds since the supervisor started.",
      s.supervisor.uptimeS ?? 0,
    ),
    ...family(
      "ami_supervisor_service_up",
      "gauge",
      "1 when the service answers its health check.",
      per((x) => (x.state === "running" ? 1 : 0)),
    ),
    ...family(
      "ami_supervisor_service_restarts_total",
      "counter",
      "Restarts after crashes or failed health checks.",
      per((x) => x.restarts),
    ),
    ...family(
      "ami_supervisor_service_uptime_seconds",
      "gauge",
      "Seconds since the service process started.",
      per((x) => x.uptimeS ?? 0),
    ),
    ...extra,
    ...processMetrics(),
  ];
  return `${out.join("\n")}\n`;
}
