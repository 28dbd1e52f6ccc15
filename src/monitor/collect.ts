/** One monitor snapshot: supervisor status + per-process CPU/RSS from /proc + each service's GET /_ami/stats. */
import { z } from "zod";
import { currentStatus } from "../control/daemon.ts";
import { cpuPercent, type ProcSample, sampleProc } from "../control/proc.ts";
import { serviceStates } from "../control/state.ts";
import type { OpContext } from "../core/ops.ts";
import { functionRowSchema, splitFunctionStats } from "./functions.ts";

export const destinationRowSchema = z.object({
  destination: z.string(),
  queued: z.number().int(),
  lastSuccessSAgo: z.number().nullable(),
  backoffS: z.number(),
});
export type DestinationRow = z.infer<typeof destinationRowSchema>;

const DEST_KEY = /^federation_dest_(.+)_(queued|last_success_s_ago|backoff_s)$/;

/**
 * Splits a homeserver's per-destination keys (src/matrix/metrics.ts: `federation_dest_<server>_queued`,
 * `..._last_success_s_ago` (-1: never), `..._backoff_s`) from its other key figures; deepest queue first.
 */
export function splitFederationStats(all: Record<string, number>): {
  stats: Record<string, number>;
  federation: DestinationRow[];
} {
  const stats: Record<string, number> = {};
  const rows = new Map<string, DestinationRow>();
  for (const [k, v] of Object.entries(all)) {
    const m = DEST_KEY.exec(k);
    if (!m) {
      stats[k] = v;
      continue;
    }
    let row = rows.get(m[1]);
    if (!row) {
      row = { destination: m[1], queued: 0, lastSuccessSAgo: null, backoffS: 0 };
      rows.set(m[1], row);
    }
    if (m[2] === "queued") row.queued = v;
    else if (m[2] === "backoff_s") row.backoffS = Math.max(0, v);
    else row.lastSuccessSAgo = v < 0 ? null : v;
  }
  const federation = [...rows.values()].sort(
    (a, b) => b.queued - a.queued || a.destination.localeCompare(b.destination),
  );
  return { stats, federation };
}

/** A service's key figures without the keys that become tables (federation destinations, edge functions). */
function split(all: Record<string, number>) {
  const fed = splitFederationStats(all);
  const fns = splitFunctionStats(fed.stats);
  return { stats: fns.stats, federation: fed.federation, functions: fns.functions };
}

export const monitorRowSchema = z.object({
  name: z.string(),
  kind: z.enum(["service", "program"]),
  state: z.enum(serviceStates),
  pid: z.number().int().nullable(),
  uptimeS: z.number().nullable(),
  restarts: z.number().int(),
  url: z.string(),
  cpuPercent: z.number().nullable(),
  rssBytes: z.number().nullable(),
  /** Key figures from the service's stats endpoint (flat numbers); empty when unreachable or it has none. */
  stats: z.record(z.string(), z.number()),
  /**
   * Per-destination federation figures of a homeserver (its stats' `federation_dest_<server>_*` keys, taken out of
   * `stats`): queue depth, last success (seconds ago, null: never) and backoff left (seconds, 0: not backing off).
   */
  federation: z.array(destinationRowSchema),
  /** Per edge function (the edge service's `fn_<name>_*` keys, taken out of `stats`). */
  functions: z.array(functionRowSchema).optional(),
});
export const monitorSnapshotSchema = z.object({
  at: z.string(),
  supervisor: z.object({
    running: z.boolean(),
    pid: z.number().int().nullable(),
    cpuPercent: z.number().nullable(),
    rssBytes: z.number().nullable(),
  }),
  services: z.array(monitorRowSchema),
  /** The supervisor's built-in alerts (firing, acknowledged, raised since start); null when it runs none. */
  alerts: z.object({ firing: z.number().int(), acked: z.number().int(), total: z.number().int() }).nullable(),
});
export type MonitorSnapshot = z.infer<typeof monitorSnapshotSchema>;

/** Key figures from `url` (our services: <base>/_ami/stats; a program only when it names a stats endpoint). */
async function stats(url: string | null): Promise<Record<string, number>> {
  if (!url) return {};
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
    if (!r.ok) return {};
    const j = (await r.json()) as Record<string, unknown>;
    return Object.fromEntries(Object.entries(j).filter((e): e is [string, number] => typeof e[1] === "number"));
  } catch {
    return {};
  }
}

/** Keeps the previous /proc samples so CPU% is measured over the refresh interval. */
export class Collector {
  #prev = new Map<number, ProcSample>();

  #cpu(pid: number | null): { cpuPercent: number | null; rssBytes: number | null } {
    if (!pid) return { cpuPercent: null, rssBytes: null };
    const now = sampleProc(pid);
    if (!now) return { cpuPercent: null, rssBytes: null };
    const before = this.#prev.get(pid);
    this.#prev.set(pid, now);
    return { cpuPercent: before ? Math.round(cpuPercent(before, now) * 10) / 10 : null, rssBytes: now.rssBytes };
  }

  /** Take a first /proc sample so the next snapshot has a CPU figure. */
  async prime(ctx: OpContext): Promise<void> {
    const st = await currentStatus(ctx);
    this.#cpu(st.supervisor.pid);
    for (const s of st.services) this.#cpu(s.pid);
  }

  async snapshot(ctx: OpContext): Promise<MonitorSnapshot> {
    const st = await currentStatus(ctx);
    const services = await Promise.all(
      st.services.map(async (s) => ({
        name: s.name,
        kind: s.kind,
        state: s.state,
        pid: s.pid,
        uptimeS: s.uptimeS,
        restarts: s.restarts,
        url: s.url,
        ...this.#cpu(s.pid),
        ...split(s.state === "running" || s.state === "unhealthy" ? await stats(s.statsUrl) : {}),
      })),
    );
    return {
      at: new Date().toISOString(),
      supervisor: { running: st.supervisor.running, pid: st.supervisor.pid, ...this.#cpu(st.supervisor.pid) },
      services,
      alerts: st.alerts ?? null,
    };
  }
}
