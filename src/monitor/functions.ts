/**
 * The monitor's edge-function table: the edge service's per-function stats keys (src/edge/server.ts:
 * `fn_<name>_invocations`, `_errors`, `_cpu_ms`, `_p99_ms`, `_rss_bytes`) become one row per function (busiest
 * first) instead of five figures each in the service's key-figures line.
 */
import { z } from "zod";

export const functionRowSchema = z.object({
  function: z.string(),
  invocations: z.number(),
  errors: z.number(),
  cpuMs: z.number(),
  p99Ms: z.number(),
  rssBytes: z.number(),
});
export type FunctionRow = z.infer<typeof functionRowSchema>;

const FN_KEY = /^fn_([a-z][a-z0-9-]*)_(invocations|errors|cpu_ms|p99_ms|rss_bytes)$/;
const FIELD = { invocations: "invocations", errors: "errors", cpu_ms: "cpuMs", p99_ms: "p99Ms", rss_bytes: "rssBytes" };

export function splitFunctionStats(all: Record<string, number>): {
  stats: Record<string, number>;
  functions: FunctionRow[];
} {
  const stats: Record<string, number> = {};
  const rows = new Map<string, FunctionRow>();
  for (const [k, v] of Object.entries(all)) {
    const m = FN_KEY.exec(k);
    if (!m) {
      stats[k] = v;
      continue;
    }
    let row = rows.get(m[1]);
    if (!row) {
      row = { function: m[1], invocations: 0, errors: 0, cpuMs: 0, p99Ms: 0, rssBytes: 0 };
      rows.set(m[1], row);
    }
    row[FIELD[m[2] as keyof typeof FIELD] as Exclude<keyof FunctionRow, "function">] = v;
  }
  const functions = [...rows.values()].sort(
    (a, b) => b.invocations - a.invocations || a.function.localeCompare(b.function),
  );
  return { stats, functions };
}
