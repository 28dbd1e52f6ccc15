/**
 * Checks an exposition against our metrics convention (docs/ARCHITECTURE.md, "Metrics"): names
 * `ami_<service>_<what>_<unit>` in base units, `_total` exactly on counters, HELP and TYPE on every family, labels
 * from one vocabulary; the standard process figures are the only other names.
 */
import { type Family, parsePrometheusText } from "../core/prom-text.ts";

export const STANDARD_NAMES = new Set([
  "process_resident_memory_bytes",
  "process_start_time_seconds",
  "nodejs_heap_size_used_bytes",
]);
export const LABELS = new Set([
  "service",
  "status",
  "path",
  "destination",
  "channel",
  "result",
  "severity",
  "le",
  "quantile",
]);
const NON_BASE_UNIT =
  /_(ms|us|ns|milliseconds|microseconds|minutes|hours|days|kbps|mbps|kb|mb|gb|kib|mib|kilobytes|megabytes|percent|fps)(_|$)/;

/** Problems found (empty: conforms). `service` is the <service> part every ami_ name must carry. */
export function conventionProblems(text: string, service: string): string[] {
  const problems: string[] = [];
  let fams: Family[];
  try {
    fams = parsePrometheusText(text);
  } catch (e) {
    return [`not valid exposition text: ${(e as Error).message}`];
  }
  for (const f of fams) {
    const n = f.name;
    if (!STANDARD_NAMES.has(n) && !n.startsWith(`ami_${service}_`)) problems.push(`${n}: not ami_${service}_<what>`);
    if (!/^[a-z][a-z0-9_]*$/.test(n)) problems.push(`${n}: not lower snake case`);
    if (NON_BASE_UNIT.test(n)) problems.push(`${n}: not in a base unit (seconds, bytes, bits_per_second...)`);
    if (f.help === undefined || f.help === "") problems.push(`${n}: no HELP`);
    if (f.type === "untyped") problems.push(`${n}: no TYPE`);
    if (f.type === "counter" && !n.endsWith("_total")) problems.push(`${n}: a counter must end in _total`);
    if (f.type !== "counter" && n.endsWith("_total")) problems.push(`${n}: _total on a ${f.type}`);
    for (const s of f.samples) {
      for (const [k, v] of Object.entries(s.labels)) {
        if (!LABELS.has(k)) problems.push(`${n}: label '${k}' is not in the vocabulary (${[...LABELS].join(", ")})`);
        if (k === "status" && !/^\d{3}$/.test(v)) problems.push(`${n}: status label '${v}' is not an HTTP status`);
      }
      if (f.type === "counter" && !(s.value >= 0)) problems.push(`${n}: negative or NaN counter`);
    }
  }
  return [...new Set(problems)];
}

/** Every family and sample name an exposition offers (for checking dashboards and rules against it). */
export function exposedNames(text: string): Set<string> {
  const out = new Set<string>();
  for (const f of parsePrometheusText(text)) {
    out.add(f.name);
    for (const s of f.samples) out.add(s.name);
    if (f.type === "histogram") for (const x of ["_bucket", "_sum", "_count"]) out.add(f.name + x);
    if (f.type === "summary") for (const x of ["_sum", "_count"]) out.add(f.name + x);
  }
  return out;
}
