/** The supervisor's alerting: rules on a timer, the alert book, delivery. Built by the supervisor, stopped with it. */
import type { Config } from "../config.ts";
import type { SupervisorStatus } from "../control/state.ts";
import type { Logger } from "../core/logger.ts";
import { family } from "../core/metrics.ts";
import type { OpContext } from "../core/ops.ts";
import type { AlertsConfig } from "./config.ts";
import { Delivery } from "./deliver.ts";
import { AlertManager } from "./manager.ts";
import { AlertRules, diskFigures } from "./rules.ts";

export class Alerting {
  readonly manager: AlertManager;
  readonly delivery: Delivery;
  readonly rules: AlertRules;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  readonly #cfg: AlertsConfig;

  constructor(config: Config, ctx: OpContext, log: Logger) {
    this.#cfg = (config as unknown as { alerts: AlertsConfig }).alerts;
    const cfg = () => this.#cfg;
    this.delivery = new Delivery(cfg, ctx, log.child({ part: "alerts" }));
    this.manager = new AlertManager(cfg, (n) => {
      log.warn("alert", { event: n.event, id: n.alert.id, kind: n.alert.kind, summary: n.alert.summary });
      this.delivery.send(n);
    });
    this.rules = new AlertRules(this.manager, ctx.paths.home);
  }

  start(status: () => SupervisorStatus): void {
    if (!this.#cfg.enabled) return;
    this.#timer = setInterval(() => {
      if (this.#running) return;
      this.#running = true;
      void this.rules
        .evaluate(status(), this.#cfg)
        .then(() => this.delivery.flush())
        .finally(() => {
          this.#running = false;
        });
    }, this.#cfg.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  prometheus(): string[] {
    const c = this.manager.counts();
    const d = diskFigures(this.rules.home);
    return [
      ...family("ami_supervisor_alerts_firing", "gauge", "Built-in alerts firing now.", c.firing),
      ...family("ami_supervisor_alerts_acked", "gauge", "Firing alerts someone acknowledged.", c.acked),
      ...family(
        "ami_supervisor_alerts_raised_total",
        "counter",
        "Alerts raised since the supervisor started.",
        c.total,
      ),
      ...family(
        "ami_supervisor_alert_notifications_total",
        "counter",
        "Alert notifications by channel and result (sent, retried, failed, dropped).",
        [...this.delivery.counts].map(([k, v]) => {
          const [channel, result] = k.split("\0");
          return [{ channel, result }, v] as const;
        }),
      ),
      ...(d
        ? [
            ...family(
              "ami_supervisor_disk_free_bytes",
              "gauge",
              "Free bytes on the runtime home's filesystem.",
              d.freeBytes,
            ),
            ...family("ami_supervisor_disk_size_bytes", "gauge", "Size of the runtime home's filesystem.", d.sizeBytes),
          ]
        : []),
    ];
  }
}
