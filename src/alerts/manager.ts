/**
 * The supervisor's alert book: one alert per key (raising it again only refreshes it), firing -> resolved, an
 * unacknowledged firing alert re-notified every renotifyMs, `ack` stops the repeats until it resolves and fires
 * anew. Delivery is someone else's (the `notify` callback); this class only decides what to say and when.
 */
import { AmiError } from "../core/errors.ts";
import type { AlertsConfig } from "./config.ts";
import { type Alert, type AlertCounts, type AlertInput, alertInputSchema } from "./types.ts";

export type NotificationEvent = "firing" | "repeat" | "resolved";
export interface Notification {
  event: NotificationEvent;
  alert: Alert;
}

/** Resolved alerts kept for `alerts list --all`. */
const HISTORY = 200;

export class AlertManager {
  readonly #byKey = new Map<string, Alert>();
  readonly #notifiedAt = new Map<string, number>();
  readonly #history: Alert[] = [];
  #seq = 0;
  readonly #cfg: () => Pick<AlertsConfig, "renotifyMs">;
  readonly #notify: (n: Notification) => void;
  readonly #now: () => number;

  constructor(
    cfg: () => Pick<AlertsConfig, "renotifyMs">,
    notify: (n: Notification) => void,
    now: () => number = Date.now,
  ) {
    this.#cfg = cfg;
    this.#notify = notify;
    this.#now = now;
  }

  #send(event: NotificationEvent, a: Alert): void {
    a.notifications++;
    this.#notifiedAt.set(a.id, this.#now());
    this.#notify({ event, alert: { ...a } });
  }

  /** Fire (or refresh) the alert for `input.key`. Returns it. */
  raise(input: AlertInput): Alert {
    const i = alertInputSchema.parse(input);
    const at = new Date(this.#now()).toISOString();
    const existing = this.#byKey.get(i.key);
    if (existing) {
      existing.lastAt = at;
      existing.summary = i.summary;
      existing.severity = i.severity;
      return { ...existing };
    }
    const a: Alert = {
      id: `a${++this.#seq}`,
      kind: i.kind,
      key: i.key,
      severity: i.severity,
      summary: i.summary,
      state: "firing",
      acked: false,
      firstAt: at,
      lastAt: at,
      resolvedAt: null,
      notifications: 0,
    };
    this.#byKey.set(i.key, a);
    this.#send("firing", a);
    return { ...a };
  }

  /** The condition behind `key` is gone: a firing alert resolves (and says so); otherwise nothing happens. */
  resolve(key: string): boolean {
    const a = this.#byKey.get(key);
    if (!a) return false;
    this.#byKey.delete(key);
    a.state = "resolved";
    a.resolvedAt = new Date(this.#now()).toISOString();
    this.#send("resolved", a);
    this.#notifiedAt.delete(a.id);
    this.#history.push(a);
    if (this.#history.length > HISTORY) this.#history.shift();
    return true;
  }

  isFiring(key: string): boolean {
    return this.#byKey.has(key);
  }

  /** Re-notify firing, unacknowledged alerts whose last notification is renotifyMs old. */
  tick(): void {
    const every = this.#cfg().renotifyMs;
    if (every <= 0) return;
    const now = this.#now();
    for (const a of this.#byKey.values()) {
      if (!a.acked && now - (this.#notifiedAt.get(a.id) ?? 0) >= every) this.#send("repeat", a);
    }
  }

  ack(id: string): Alert {
    const a = [...this.#byKey.values()].find((x) => x.id === id);
    if (!a) {
      const old = this.#history.find((x) => x.id === id);
      if (old) throw new AmiError("AMI_INVALID_INPUT", `alert ${id} is already resolved`, {}, 400);
      throw new AmiError("M_NOT_FOUND", `no firing alert '${id}' (see \`ami-streams alerts list\`)`);
    }
    a.acked = true;
    return { ...a };
  }

  /** Firing alerts (newest first); with `all`, resolved ones too. */
  list(all = false): Alert[] {
    const firing = [...this.#byKey.values()].reverse();
    return (all ? [...firing, ...[...this.#history].reverse()] : firing).map((a) => ({ ...a }));
  }

  counts(): AlertCounts {
    const firing = [...this.#byKey.values()];
    return {
      firing: firing.length,
      acked: firing.filter((a) => a.acked).length,
      total: this.#seq,
    };
  }
}
