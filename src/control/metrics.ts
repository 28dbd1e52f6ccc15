/** Prometheus text exposition for the supervisor's GET /metrics. */
import type { SupervisorStatus } from "./state.ts";

export function supervisorMetrics(s: SupervisorStatus): string {
  const out: string[] = [
    "# HELP ami_supervisor_uptime_seconds Seconds since the supervisor started.",
    "# TYPE ami_supervisor_uptime_seconds gauge",
    `ami_supervisor_uptime_seconds ${s.supervisor.uptimeS ?? 0}`,
    "# HELP ami_service_up 1 when the service answers its health check.",
    "# TYPE ami_service_up gauge",
    ...s.services.map((x) => `ami_service_up{service="${x.name}"} ${x.state === "running" ? 1 : 0}`),
    "# HELP ami_service_restarts_total Restarts after crashes or failed health checks.",
    "# TYPE ami_service_restarts_total counter",
    ...s.services.map((x) => `ami_service_restarts_total{service="${x.name}"} ${x.restarts}`),
    "# HELP ami_service_uptime_seconds Seconds since the service process started.",
    "# TYPE ami_service_uptime_seconds gauge",
    ...s.services.map((x) => `ami_service_uptime_seconds{service="${x.name}"} ${x.uptimeS ?? 0}`),
  ];
  return `${out.join("\n")}\n`;
}
