/**
 * Delivery to HTTP pushers (Push Gateway API, POST /_matrix/push/v1/notify). Each pusher has its own bounded
 * queue and at most one POST in flight; a failure is retried with exponential backoff and given up after
 * `giveUpAfterMs` (Synapse: one day); a queue past `queueMax` drops its oldest notification. Pushkeys the gateway
 * names in `rejected` lose their pushers. Nothing here is awaited by a send.
 */
import type { JsonObject } from "../events/types.ts";
import type { Homeserver } from "../hs.ts";
import type { PusherRow } from "../store/types.ts";

/** The gateway's body minus `devices` (added per pusher). */
export interface GatewayNotification {
  event_id?: string;
  room_id?: string;
  type?: string;
  sender?: string;
  sender_display_name?: string;
  room_name?: string;
  room_alias?: string;
  user_is_target?: boolean;
  prio: "high" | "low";
  content?: JsonObject;
  counts: { unread?: number; missed_calls?: number };
}

interface Job {
  notification: GatewayNotification;
  tweaks: JsonObject;
  firstTry: number;
  attempt: number;
}

interface Queue {
  pusher: PusherRow;
  jobs: Job[];
  running: boolean;
  /** The pusher was deleted: stop retrying what is in flight. */
  gone: boolean;
}

/** A gateway's response body is read up to this many bytes (it only carries `rejected`). */
const MAX_RESPONSE_BYTES = 64 * 1024;
/** Queues kept at once (one per pusher with something to send); past it new notifications are dropped. */
const MAX_QUEUES = 10_000;

export class PushDelivery {
  readonly #hs: Homeserver;
  readonly #queues = new Map<string, Queue>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #closed = false;
  /** Counters for tests and metrics. */
  readonly stats = { sent: 0, failed: 0, retried: 0, dropped: 0, rejected: 0 };

  constructor(hs: Homeserver) {
    this.#hs = hs;
  }

  /** Queue `notification` for `pusher` (an http pusher); returns at once. */
  enqueue(pusher: PusherRow, notification: GatewayNotification, tweaks: JsonObject): void {
    if (this.#closed) return;
    const key = `${pusher.userId}|${pusher.appId}|${pusher.pushkey}`;
    let q = this.#queues.get(key);
    if (!q) {
      if (this.#queues.size >= MAX_QUEUES) {
        this.stats.dropped++;
        return;
      }
      q = { pusher, jobs: [], running: false, gone: false };
      this.#queues.set(key, q);
    }
    q.pusher = pusher;
    q.jobs.push({ notification, tweaks, firstTry: Date.now(), attempt: 0 });
    while (q.jobs.length > this.#hs.config.push.queueMax) {
      q.jobs.shift();
      this.stats.dropped++;
    }
    if (!q.running) void this.#run(key, q);
  }

  /** Drop what is queued for a pusher that was deleted. */
  forget(userId: string, appId: string, pushkey: string): void {
    const key = `${userId}|${appId}|${pushkey}`;
    const q = this.#queues.get(key);
    if (!q) return;
    q.jobs.length = 0;
    q.gone = true;
    this.#queues.delete(key);
  }

  /** Notifications waiting over all pushers (not counting those in flight). */
  get pending(): number {
    let n = 0;
    for (const q of this.#queues.values()) n += q.jobs.length;
    return n;
  }

  close(): void {
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.#queues.clear();
  }

  /** Send the queue's notifications one by one; the one in flight is off the queue, so a full queue keeps it. */
  async #run(key: string, q: Queue): Promise<void> {
    q.running = true;
    const cfg = this.#hs.config.push;
    try {
      for (let job = q.jobs.shift(); job && !this.#closed && !q.gone; job = q.jobs.shift()) {
        for (;;) {
          const result = await this.#post(q.pusher, job);
          if (result === "rejected") {
            this.stats.rejected++;
            this.stats.dropped += q.jobs.length;
            q.jobs.length = 0;
          }
          if (result !== "retry" || this.#closed || q.gone) break;
          this.stats.failed++;
          job.attempt++;
          const delay = Math.min(cfg.retryInitialMs * 2 ** (job.attempt - 1), cfg.retryMaxMs);
          if (Date.now() + delay - job.firstTry > cfg.giveUpAfterMs) {
            this.stats.dropped++;
            break;
          }
          this.stats.retried++;
          await this.#sleep(delay);
        }
      }
    } finally {
      q.running = false;
      if (this.#queues.get(key) === q && q.jobs.length === 0) this.#queues.delete(key);
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.#timers.delete(t);
        resolve();
      }, ms);
      t.unref();
      this.#timers.add(t);
    });
  }

  /** One POST: "ok", "rejected" (the pusher is deleted), "retry" (network error, timeout, 5xx or 429). */
  async #post(p: PusherRow, job: Job): Promise<"ok" | "rejected" | "retry"> {
    const { url, ...data } = p.data;
    const body = {
      notification: {
        ...job.notification,
        devices: [
          {
            app_id: p.appId,
            pushkey: p.pushkey,
            pushkey_ts: Math.floor(p.pushkeyTs / 1000),
            data,
            tweaks: job.tweaks,
          },
        ],
      },
    };
    let status: number;
    let text: string;
    try {
      const res = await fetch(String(url), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        redirect: "error",
        signal: AbortSignal.timeout(this.#hs.config.push.timeoutMs),
      });
      status = res.status;
      text = await readCapped(res, MAX_RESPONSE_BYTES);
    } catch (e) {
      this.#hs.log.debug("push: gateway unreachable", { url: String(url), err: String(e) });
      return "retry";
    }
    if (status >= 500 || status === 429) return "retry";
    if (status >= 400) {
      // The gateway refuses this notification itself: retrying would not help (Synapse drops it too).
      this.#hs.log.warn("push: gateway refused a notification", { url: String(url), status });
      return "ok";
    }
    this.stats.sent++;
    let rejected: unknown;
    try {
      rejected = (JSON.parse(text) as { rejected?: unknown }).rejected;
    } catch {
      return "ok"; // a 2xx with garbage: delivered, nothing rejected
    }
    if (Array.isArray(rejected) && rejected.includes(p.pushkey)) {
      try {
        await this.#hs.store.pushers.deletePusher(p.userId, p.appId, p.pushkey);
      } catch (e) {
        this.#hs.log.warn("push: could not delete a rejected pusher", { err: String(e) });
      }
      return "rejected";
    }
    return "ok";
  }
}

/** The response body as text, at most `max` bytes (the rest is discarded unread). */
async function readCapped(res: Response, max: number): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.byteLength;
    if (n > max) {
      await reader.cancel();
      return "";
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}
