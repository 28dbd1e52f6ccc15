/** Homeserver key figures for `/_ami/stats` (monitor) and `/metrics` (Prometheus text). */
import { processMetrics } from "../core/metrics.ts";
import type { DestinationStatus } from "./federation/sender.ts";

/** Destinations shown one by one in /_ami/stats (the deepest queues first); all of them in /metrics. */
const STATS_DESTINATIONS = 10;

export class Metrics {
  /** The federation sender's per-destination figures (set by the homeserver; null: no federation figures). */
  federation: (() => DestinationStatus[]) | null = null;
  /** Rate-limit answers from this process's own buckets because the shared ones (Redis) did not answer. */
  rateLimitFallbacks: () => number = () => 0;
  /** Whether this process sends federation transactions (with workers: only the lease holder does). */
  federationSender: (() => boolean) | null = null;
  requests = 0;
  eventsPersisted = 0;
  activeSyncs = 0;
  /** Open WebSocket event streams (src/matrix/websocket/hub.ts), frames sent on them, slow consumers closed. */
  activeWebsockets = 0;
  /** Of those, how many are over their write-buffer bound (not computed for until they drain). */
  blockedWebsockets = 0;
  websocketFrames = 0;
  websocketResyncs = 0;
  readonly byStatus = new Map<number, number>();
  readonly startedAt = Date.now();
  // Recent request latencies (ms) in a ring buffer: p99 over the last 2048 requests.
  readonly #lat = new Float64Array(2048);
  #latN = 0;
  // Requests per second over a sliding 10 s window of per-second buckets.
  readonly #buckets = new Map<number, number>();

  observeRequest(status: number, ms: number): void {
    this.requests++;
    this.byStatus.set(status, (this.byStatus.get(status) ?? 0) + 1);
    this.#lat[this.#latN++ % this.#lat.length] = ms;
    const sec = Math.floor(Date.now() / 1000);
    this.#buckets.set(sec, (this.#buckets.get(sec) ?? 0) + 1);
    if (this.#buckets.size > 12) for (const k of this.#buckets.keys()) if (k < sec - 10) this.#buckets.delete(k);
  }

  requestsPerSec(): number {
    const sec = Math.floor(Date.now() / 1000);
    let n = 0;
    for (const [k, v] of this.#buckets) if (k >= sec - 10 && k < sec) n += v;
    return n / 10;
  }

  p99(): number {
    const n = Math.min(this.#latN, this.#lat.length);
    if (n === 0) return 0;
    const a = Array.from(this.#lat.subarray(0, n)).sort((x, y) => x - y);
    return a[Math.min(n - 1, Math.floor(n * 0.99))];
  }

  stats(): Record<string, number> {
    return {
      requests_per_sec: this.requestsPerSec(),
      requests_total: this.requests,
      events_persisted: this.eventsPersisted,
      active_syncs: this.activeSyncs,
      active_websockets: this.activeWebsockets,
      blocked_websockets: this.blockedWebsockets,
      websocket_frames_total: this.websocketFrames,
      websocket_resyncs_total: this.websocketResyncs,
      p99_latency_ms: Math.round(this.p99() * 100) / 100,
      uptime_s: Math.round((Date.now() - this.startedAt) / 1000),
      // V8 heap in use (live objects plus garbage not yet collected): with RSS, tells leaks from native growth.
      heap_used_mb: Math.round((process.memoryUsage().heapUsed / 1048576) * 10) / 10,
      ...this.#federationStats(),
    };
  }

  /**
   * Federation totals plus, per destination (the STATS_DESTINATIONS deepest queues), its queue depth, last success
   * (seconds ago, -1 never) and backoff left (seconds): `federation_dest_<server>_queued` and so on.
   */
  #federationStats(): Record<string, number> {
    const all = this.federation?.();
    if (!all) return {};
    const now = Date.now();
    const out: Record<string, number> = {
      federation_sender: this.federationSender?.() ? 1 : 0,
      federation_destinations: all.length,
      federation_queued_pdus: all.reduce((n, d) => n + d.queuedPdus, 0),
      federation_queued_edus: all.reduce((n, d) => n + d.queuedEdus, 0),
      federation_backing_off: all.filter((d) => d.backoffUntil !== null).length,
    };
    const deepest = [...all]
      .sort((a, b) => b.queuedPdus + b.queuedEdus - (a.queuedPdus + a.queuedEdus))
      .slice(0, STATS_DESTINATIONS);
    for (const d of deepest) {
      const k = `federation_dest_${d.destination}`;
      out[`${k}_queued`] = d.queuedPdus + d.queuedEdus;
      out[`${k}_last_success_s_ago`] = d.lastSuccessTs === null ? -1 : Math.round((now - d.lastSuccessTs) / 1000);
      out[`${k}_backoff_s`] = d.backoffUntil === null ? 0 : Math.ceil((d.backoffUntil - now) / 1000);
    }
    return out;
  }

  /** Declared even with federation off (no samples then), so dashboards and rules find the families. */
  #federationPrometheus(): string[] {
    const all = this.federation?.() ?? [];
    const label = (d: DestinationStatus) => `{destination="${d.destination.replace(/["\\\n]/g, "_")}"}`;
    return [
      "# HELP ami_matrix_federation_sender 1 when this process sends the federation transactions (with workers: the lease holder).",
      "# TYPE ami_matrix_federation_sender gauge",
      ...(this.federationSender ? [`ami_matrix_federation_sender ${this.federationSender() ? 1 : 0}`] : []),
      "# HELP ami_matrix_federation_queued_pdus PDUs queued for a destination server (including the one in flight).",
      "# TYPE ami_matrix_federation_queued_pdus gauge",
      ...all.map((d) => `ami_matrix_federation_queued_pdus${label(d)} ${d.queuedPdus}`),
      "# HELP ami_matrix_federation_queued_edus EDUs queued for a destination server (including the one in flight).",
      "# TYPE ami_matrix_federation_queued_edus gauge",
      ...all.map((d) => `ami_matrix_federation_queued_edus${label(d)} ${d.queuedEdus}`),
      "# HELP ami_matrix_federation_last_success_timestamp_seconds Last successful transaction to a destination.",
      "# TYPE ami_matrix_federation_last_success_timestamp_seconds gauge",
      ...all
        .filter((d) => d.lastSuccessTs !== null)
        .map((d) => `ami_matrix_federation_last_success_timestamp_seconds${label(d)} ${(d.lastSuccessTs ?? 0) / 1000}`),
      "# HELP ami_matrix_federation_backoff_until_timestamp_seconds A destination is not tried before this (0: not backing off).",
      "# TYPE ami_matrix_federation_backoff_until_timestamp_seconds gauge",
      ...all.map(
        (d) => `ami_matrix_federation_backoff_until_timestamp_seconds${label(d)} ${(d.backoffUntil ?? 0) / 1000}`,
      ),
      "# HELP ami_matrix_federation_dropped_total Items dropped for a destination (queue bound, stale typing, refused).",
      "# TYPE ami_matrix_federation_dropped_total counter",
      ...all.map((d) => `ami_matrix_federation_dropped_total${label(d)} ${d.dropped}`),
    ];
  }

  prometheus(): string {
    const lines = [
      "# HELP ami_matrix_requests_total HTTP requests answered, by status.",
      "# TYPE ami_matrix_requests_total counter",
      ...[...this.byStatus].map(([s, n]) => `ami_matrix_requests_total{status="${s}"} ${n}`),
      "# HELP ami_matrix_ratelimit_fallbacks_total Rate-limit answers from this worker's own buckets (shared ones unreachable).",
      "# TYPE ami_matrix_ratelimit_fallbacks_total counter",
      `ami_matrix_ratelimit_fallbacks_total ${this.rateLimitFallbacks()}`,
      "# HELP ami_matrix_events_persisted_total Room events persisted since start.",
      "# TYPE ami_matrix_events_persisted_total counter",
      `ami_matrix_events_persisted_total ${this.eventsPersisted}`,
      "# HELP ami_matrix_active_syncs Long-polling /sync requests in progress.",
      "# TYPE ami_matrix_active_syncs gauge",
      `ami_matrix_active_syncs ${this.activeSyncs}`,
      "# HELP ami_matrix_active_websockets Open WebSocket event streams.",
      "# TYPE ami_matrix_active_websockets gauge",
      `ami_matrix_active_websockets ${this.activeWebsockets}`,
      "# HELP ami_matrix_blocked_websockets WebSocket streams over their write-buffer bound.",
      "# TYPE ami_matrix_blocked_websockets gauge",
      `ami_matrix_blocked_websockets ${this.blockedWebsockets}`,
      "# HELP ami_matrix_websocket_frames_total Sync frames sent on WebSocket event streams.",
      "# TYPE ami_matrix_websocket_frames_total counter",
      `ami_matrix_websocket_frames_total ${this.websocketFrames}`,
      "# HELP ami_matrix_websocket_resyncs_total WebSocket streams closed for being too slow (told to resync).",
      "# TYPE ami_matrix_websocket_resyncs_total counter",
      `ami_matrix_websocket_resyncs_total ${this.websocketResyncs}`,
      "# HELP ami_matrix_request_latency_p99_seconds p99 request latency over the last 2048 requests.",
      "# TYPE ami_matrix_request_latency_p99_seconds gauge",
      `ami_matrix_request_latency_p99_seconds ${this.p99() / 1000}`,
      ...processMetrics(),
      ...this.#federationPrometheus(),
    ];
    return lines.join("\n") + "\n";
  }
}
