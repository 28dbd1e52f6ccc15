/**
 * The `backup` service (started by `up` when `backup.schedule` is set): makes a backup whenever one is due, prunes
 * past `backup.keep`, and answers `/health`, `/_ami/stats` and `/metrics` so the supervisor, the monitor and
 * alerting see when the last backup succeeded or failed.
 */
import type { Config } from "../config.ts";
import { baseUrl } from "../core/http/address.ts";
import { createHttpListener } from "../core/http/server.ts";
import type { Logger } from "../core/logger.ts";
import type { RuntimePaths } from "../core/paths.ts";
import type { ServiceDef } from "../core/service.ts";
import { scheduleMs } from "./config.ts";

export interface SchedulerState {
  backups: number;
  failures: number;
  lastSuccessTs: number | null;
  lastFailureTs: number | null;
  lastError: string | null;
  lastDurationMs: number | null;
  running: boolean;
}

/** A scheduler that has made no backup yet. */
export function newSchedulerState(): SchedulerState {
  return {
    backups: 0,
    failures: 0,
    lastSuccessTs: null,
    lastFailureTs: null,
    lastError: null,
    lastDurationMs: null,
    running: false,
  };
}

/** One scheduler tick: a backup if due, then pruning. Exported for tests; the service calls it on a timer. */
export async function tick(
  config: Config,
  configPath: string | undefined,
  paths: RuntimePaths,
  log: Logger,
  state: SchedulerState,
  now = Date.now(),
): Promise<"made" | "not-due" | "failed"> {
  const { homeLayout } = await import("./layout.ts");
  const { dueIn, prune } = await import("./schedule.ts");
  const dir = homeLayout(config, paths).backupDir;
  if (!config.backup.schedule || dueIn(dir, scheduleMs(config.backup.schedule), now) > 0) return "not-due";
  const { createBackup } = await import("./create.ts");
  const alerts = await import("../alerts/raise.ts");
  state.running = true;
  try {
    const r = await createBackup({ config, configPath, paths, log, tar: config.backup.tar });
    state.backups++;
    state.lastSuccessTs = Date.now();
    state.lastDurationMs = r.durationMs;
    log.info("scheduled backup made", { path: r.path, bytes: r.bytes, durationMs: r.durationMs });
    const removed = await prune(dir, config.backup.keep);
    if (removed.length) log.info("old backups removed", { removed });
    await alerts.resolve({ config, paths, log }, "backup_failed").catch(() => false);
    return "made";
  } catch (e) {
    state.failures++;
    state.lastFailureTs = Date.now();
    state.lastError = (e as Error).message;
    log.error("scheduled backup failed", { error: (e as Error).message });
    // The built-in alerts (src/alerts/) tell the operator's room and webhook; without a supervisor it is only logged.
    await alerts
      .raise(
        { config, paths, log },
        {
          kind: "backup_failed",
          key: "backup_failed",
          severity: "critical",
          summary: `scheduled backup failed: ${state.lastError}`,
        },
      )
      .catch((err) => log.warn("backup alert not raised", { error: (err as Error).message }));
    return "failed";
  } finally {
    state.running = false;
  }
}

const stateFigures = (s: SchedulerState): Record<string, number> => ({
  backups_total: s.backups,
  failures_total: s.failures,
  last_success_age_s: s.lastSuccessTs === null ? -1 : Math.round((Date.now() - s.lastSuccessTs) / 1000),
  last_failed: s.lastFailureTs !== null && (s.lastSuccessTs === null || s.lastFailureTs > s.lastSuccessTs) ? 1 : 0,
  last_duration_ms: s.lastDurationMs ?? -1,
});

export const backupService: ServiceDef = {
  name: "backup",
  summary: "Scheduled backups of the homeserver, media, store and keys, with retention",
  enabled: (c) => c.backup.schedule !== null,
  baseUrl: (c) => baseUrl("http", c.backup.host, c.backup.port),
  describe: (c) => [`backup: every ${c.backup.schedule}, keeping ${c.backup.keep || "all"} (ami-streams backup list)`],
  async start(config, { paths, log, configPath }) {
    const state = newSchedulerState();
    const interval = scheduleMs(config.backup.schedule ?? "1d");
    // Checked often enough to be on time within a minute (or a tenth of a short interval), never in parallel.
    const every = Math.min(60_000, Math.max(1_000, interval / 10));
    let timer: NodeJS.Timeout | undefined;
    let closed = false;
    const loop = async () => {
      await tick(config, configPath, paths, log, state).catch(() => {});
      if (!closed) timer = setTimeout(loop, every);
    };
    const listener = createHttpListener({
      name: "backup",
      log,
      handler(req, res, target) {
        const json = (status: number, body: unknown) => {
          res.writeHead(status, { "Content-Type": "application/json", "Cache-Control": "no-store" });
          res.end(JSON.stringify(body));
        };
        if (req.method !== "GET" && req.method !== "HEAD")
          return json(405, { errcode: "M_UNRECOGNIZED", error: "method not allowed" });
        if (target.pathname === "/health") return json(200, { ok: true });
        if (target.pathname === "/_ami/stats") return json(200, stateFigures(state));
        if (target.pathname === "/_ami/backup") return json(200, state);
        if (target.pathname === "/metrics") {
          const f = stateFigures(state);
          res.writeHead(200, { "Content-Type": "text/plain; version=0.0.4" });
          return res.end(
            [
              "# HELP ami_backup_total Scheduled backups made.",
              "# TYPE ami_backup_total counter",
              `ami_backup_total ${f.backups_total}`,
              "# HELP ami_backup_failures_total Scheduled backups that failed.",
              "# TYPE ami_backup_failures_total counter",
              `ami_backup_failures_total ${f.failures_total}`,
              "# HELP ami_backup_last_success_timestamp_seconds When the last scheduled backup succeeded (0: never).",
              "# TYPE ami_backup_last_success_timestamp_seconds gauge",
              `ami_backup_last_success_timestamp_seconds ${Math.floor((state.lastSuccessTs ?? 0) / 1000)}`,
              "",
            ].join("\n"),
          );
        }
        json(404, { errcode: "M_NOT_FOUND", error: "not found" });
      },
    });
    const port = await listener.listen(config.backup.port, config.backup.host);
    timer = setTimeout(loop, 0);
    return {
      url: baseUrl("http", config.backup.host, port),
      async close() {
        closed = true;
        clearTimeout(timer);
        await listener.close();
      },
    };
  },
};
