/**
 * Delivery of alert notifications: a notice in a Matrix room on our own homeserver (posted by the homeserver's
 * service account, which creates the room under its alias on first use and invites the configured users), and a
 * JSON POST to `alerts.webhook.url` with a per-attempt timeout and retries. A notification the homeserver cannot
 * take now (it may be the service that is down) waits in a bounded queue retried at every evaluation.
 */
import { AmiError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import type { OpContext } from "../core/ops.ts";
import type { AlertsConfig } from "./config.ts";
import type { Notification } from "./manager.ts";

const MATRIX_QUEUE = 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function notificationText(n: Notification): string {
  const a = n.alert;
  const head = n.event === "resolved" ? "RESOLVED" : n.event === "repeat" ? "STILL FIRING" : "FIRING";
  const ack = n.event === "resolved" ? "" : ` (ack: ami-streams alerts ack ${a.id})`;
  return `[${head}] ${a.severity} ${a.kind}: ${a.summary}${ack}`;
}

/** Counts by channel and result, for the supervisor's /metrics. */
export type DeliveryCounts = Map<string, number>;

export class Delivery {
  readonly counts: DeliveryCounts = new Map();
  readonly #matrixQueue: Notification[] = [];
  #roomId: string | undefined;
  #flushing = false;
  #txn = 0;
  readonly #cfg: () => AlertsConfig;
  readonly #ctx: OpContext;
  readonly #log: Logger;

  constructor(cfg: () => AlertsConfig, ctx: OpContext, log: Logger) {
    this.#cfg = cfg;
    this.#ctx = ctx;
    this.#log = log;
  }

  #count(channel: string, result: string): void {
    const k = `${channel}\0${result}`;
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
  }

  send(n: Notification): void {
    const cfg = this.#cfg();
    if (cfg.webhook.url) void this.#webhook(n, cfg.webhook);
    if (cfg.matrix.enabled && this.#ctx.config.matrix.enabled) {
      this.#matrixQueue.push(n);
      if (this.#matrixQueue.length > MATRIX_QUEUE) {
        this.#matrixQueue.shift();
        this.#count("matrix", "dropped");
      }
      void this.flush();
    }
  }

  async #webhook(n: Notification, w: AlertsConfig["webhook"]): Promise<void> {
    const body = JSON.stringify({ event: n.event, alert: n.alert, text: notificationText(n) });
    for (let attempt = 0; ; attempt++) {
      try {
        const r = await fetch(w.url as string, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
          signal: AbortSignal.timeout(w.timeoutMs),
        });
        await r.body?.cancel();
        if (r.ok) return this.#count("webhook", "sent");
        throw new Error(`HTTP ${r.status}`);
      } catch (e) {
        if (attempt >= w.retries) {
          this.#count("webhook", "failed");
          this.#log.warn("alert webhook failed", { alert: n.alert.id, attempts: attempt + 1, error: String(e) });
          return;
        }
        this.#count("webhook", "retried");
        await sleep(1000 * 2 ** attempt);
      }
    }
  }

  /** Post queued notices in order; stops at the first failure (kept for the next flush). */
  async flush(): Promise<void> {
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      while (this.#matrixQueue.length > 0) {
        const n = this.#matrixQueue[0];
        try {
          await this.#post(n);
          this.#matrixQueue.shift();
          this.#count("matrix", "sent");
        } catch (e) {
          this.#count("matrix", "retried");
          this.#log.debug("alert not posted to Matrix yet", { alert: n.alert.id, error: String(e) });
          if (e instanceof AmiError && e.code === "M_FORBIDDEN") this.#roomId = undefined;
          return;
        }
      }
    } finally {
      this.#flushing = false;
    }
  }

  async #post(n: Notification): Promise<void> {
    const { asService } = await import("../matrix/ops/client.ts");
    const room = await this.#room(asService);
    const txn = `alert-${process.pid}-${Date.now()}-${++this.#txn}`;
    await asService(
      this.#ctx,
      "PUT",
      `/_matrix/client/v3/rooms/${encodeURIComponent(room)}/send/m.room.message/${txn}`,
      {
        msgtype: "m.notice",
        body: notificationText(n),
        "org.ami-streams.alert": { event: n.event, ...n.alert },
      },
    );
  }

  async #room(asService: typeof import("../matrix/ops/client.ts").asService): Promise<string> {
    if (this.#roomId) return this.#roomId;
    const cfg = this.#cfg().matrix;
    const alias = `#${cfg.room}:${this.#ctx.config.matrix.serverName}`;
    let id: string;
    try {
      id = (await asService(this.#ctx, "GET", `/_matrix/client/v3/directory/room/${encodeURIComponent(alias)}`))
        .room_id;
      // Users added to the config since the room was made are invited now (already there: refused, fine).
      for (const u of cfg.invite) {
        await asService(this.#ctx, "POST", `/_matrix/client/v3/rooms/${encodeURIComponent(id)}/invite`, {
          user_id: u,
        }).catch(() => {});
      }
    } catch (e) {
      if (!(e instanceof AmiError) || e.code !== "M_NOT_FOUND") throw e;
      id = (
        await asService(this.#ctx, "POST", "/_matrix/client/v3/createRoom", {
          room_alias_name: cfg.room,
          name: "ami-streams alerts",
          topic: "Alerts from the ami-streams supervisor (ami-streams alerts list|ack)",
          preset: "private_chat",
          invite: cfg.invite,
        })
      ).room_id;
    }
    this.#roomId = id;
    return id;
  }
}
