/**
 * The built-in rules, run by the supervisor every `alerts.intervalMs` over what it already knows (its services'
 * states and restart counts), the runtime home's filesystem, and each running service's /metrics (5xx share) and
 * /_ami/stats (live media streams). Each rule raises or resolves one key; the manager dedupes.
 */
import { statfsSync } from "node:fs";
import type { SupervisorStatus } from "../control/state.ts";
import { parsePrometheusText, sumSamples } from "../core/prom-text.ts";
import type { AlertsConfig } from "./config.ts";
import type { AlertManager } from "./manager.ts";

const BAD = new Set(["failed", "unhealthy", "backoff", "orphaned"]);

export interface DiskFigures {
  freeBytes: number;
  sizeBytes: number;
}

export function diskFigures(path: string): DiskFigures | null {
  try {
    const s = statfsSync(path);
    return { freeBytes: s.bavail * s.bsize, sizeBytes: s.blocks * s.bsize };
  } catch {
    return null;
  }
}

async function fetchText(url: string): Promise<string | null> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
    return r.ok ? await r.text() : null;
  } catch {
    return null;
  }
}

export class AlertRules {
  readonly #badSince = new Map<string, number>();
  readonly #restartTimes = new Map<string, number[]>();
  readonly #lastRestarts = new Map<string, number>();
  readonly #lastRequests = new Map<string, { total: number; errors: number }>();
  readonly #liveStreams = new Set<string>();
  disk: DiskFigures | null = null;

  readonly alerts: AlertManager;
  readonly home: string;
  readonly now: () => number;

  constructor(alerts: AlertManager, home: string, now: () => number = Date.now) {
    this.alerts = alerts;
    this.home = home;
    this.now = now;
  }

  async evaluate(st: SupervisorStatus, cfg: AlertsConfig): Promise<void> {
    const now = this.now();
    for (const s of st.services) {
      const downKey = `service_down:${s.name}`;
      if (BAD.has(s.state)) {
        const since = this.#badSince.get(s.name) ?? now;
        this.#badSince.set(s.name, since);
        if (now - since >= cfg.downAfterMs) {
          this.alerts.raise({
            kind: "service_down",
            key: downKey,
            severity: "critical",
            summary: `${s.name} is ${s.state}${s.lastExit ? ` (last exit: ${s.lastExit})` : ""}${s.failure ? `: ${s.failure}` : ""}`,
          });
        }
      } else {
        this.#badSince.delete(s.name);
        if (s.state === "running" || s.state === "stopped") this.alerts.resolve(downKey);
      }

      const prev = this.#lastRestarts.get(s.name) ?? s.restarts;
      this.#lastRestarts.set(s.name, s.restarts);
      const times = (this.#restartTimes.get(s.name) ?? []).filter((t) => now - t < cfg.restartLoop.windowMs);
      for (let i = prev; i < s.restarts; i++) times.push(now);
      this.#restartTimes.set(s.name, times);
      const loopKey = `restart_loop:${s.name}`;
      if (times.length >= cfg.restartLoop.restarts) {
        this.alerts.raise({
          kind: "restart_loop",
          key: loopKey,
          severity: "critical",
          summary: `${s.name} restarted ${times.length} times in the last ${Math.round(cfg.restartLoop.windowMs / 1000)} s${s.lastExit ? ` (last exit: ${s.lastExit})` : ""}`,
        });
      } else if (times.length === 0) this.alerts.resolve(loopKey);

      if (s.kind === "service" && (s.state === "running" || s.state === "unhealthy")) {
        await this.#errorRate(s.name, s.url, cfg);
        if (s.statsUrl) await this.#streams(s.name, s.statsUrl);
      }
    }

    this.disk = diskFigures(this.home);
    if (this.disk && this.disk.sizeBytes > 0) {
      const freePct = (this.disk.freeBytes / this.disk.sizeBytes) * 100;
      if (freePct < cfg.diskMinFreePercent) {
        this.alerts.raise({
          kind: "disk_full",
          key: "disk_full",
          severity: "critical",
          summary: `${freePct.toFixed(1)}% free on the filesystem of ${this.home} (alert below ${cfg.diskMinFreePercent}%)`,
        });
      } else this.alerts.resolve("disk_full");
    }
    this.alerts.tick();
  }

  /** 5xx share of `ami_<service>_requests_total` since the last evaluation. */
  async #errorRate(service: string, url: string, cfg: AlertsConfig): Promise<void> {
    const text = await fetchText(`${url}/metrics`);
    if (text === null) return;
    let fams: ReturnType<typeof parsePrometheusText>;
    try {
      fams = parsePrometheusText(text);
    } catch {
      return;
    }
    const name = `ami_${service}_requests_total`;
    const total = sumSamples(fams, name);
    if (total === undefined) return;
    const errors = sumSamples(fams, name, { status: /^5/ }) ?? 0;
    const before = this.#lastRequests.get(service);
    this.#lastRequests.set(service, { total, errors });
    if (!before || total < before.total) return; // first look, or the service restarted
    const dt = total - before.total;
    const de = errors - before.errors;
    const key = `error_rate:${service}`;
    if (dt >= cfg.errorRate.minRequests && de / dt > cfg.errorRate.ratio) {
      this.alerts.raise({
        kind: "error_rate",
        key,
        severity: "warning",
        summary: `${service}: ${de} of ${dt} requests failed with 5xx (${((de / dt) * 100).toFixed(1)}%)`,
      });
    } else if (dt >= cfg.errorRate.minRequests || dt === 0) this.alerts.resolve(key);
  }

  /** A media path that was live and no longer is: stream_dropped until it is live again. */
  async #streams(service: string, statsUrl: string): Promise<void> {
    const text = await fetchText(statsUrl);
    if (text === null) return;
    let per: unknown;
    try {
      per = (JSON.parse(text) as { per_stream?: unknown }).per_stream;
    } catch {
      return;
    }
    if (!Array.isArray(per)) return;
    const live = new Set<string>();
    for (const p of per as { path?: unknown; live?: unknown }[]) {
      if (typeof p.path === "string" && p.live === true) live.add(`${service}:${p.path}`);
    }
    for (const k of live) {
      this.#liveStreams.add(k);
      this.alerts.resolve(`stream_dropped:${k}`);
    }
    for (const k of this.#liveStreams) {
      if (!k.startsWith(`${service}:`) || live.has(k)) continue;
      this.#liveStreams.delete(k);
      this.alerts.raise({
        kind: "stream_dropped",
        key: `stream_dropped:${k}`,
        severity: "warning",
        summary: `stream ${k.slice(service.length + 1)} on ${service} is no longer live`,
      });
    }
  }
}
