/**
 * Shared pieces of every service's Prometheus exposition. The convention (docs/ARCHITECTURE.md, "Metrics"):
 * `ami_<service>_<what>_<unit>` in base units (seconds, bytes, bits_per_second), counters end in `_total`, labels
 * from one small vocabulary (service, status, path, destination, channel, result, severity); the standard
 * `process_*` / `nodejs_*` process figures are the only other names.
 */

/** HELP + TYPE + sample lines of one family (label values escaped as the format asks). */
export function family(
  name: string,
  type: "gauge" | "counter",
  help: string,
  samples: readonly (readonly [Record<string, string>, number])[] | number,
): string[] {
  const rows = typeof samples === "number" ? [[{}, samples] as const] : samples;
  return [
    `# HELP ${name} ${help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`,
    `# TYPE ${name} ${type}`,
    ...rows.map(([labels, v]) => `${name}${labelText(labels)} ${v}`),
  ];
}

export function labelText(labels: Record<string, string>): string {
  const e = Object.entries(labels);
  if (e.length === 0) return "";
  const esc = (s: string) => s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
  return `{${e.map(([k, v]) => `${k}="${esc(v)}"`).join(",")}}`;
}

const startedAtS = Math.round(Date.now() - performance.now()) / 1000;

/** The process figures every service exposes under their standard names. */
export function processMetrics(): string[] {
  const mem = process.memoryUsage();
  return [
    ...family("process_resident_memory_bytes", "gauge", "Resident memory.", mem.rss),
    ...family("process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch.", startedAtS),
    ...family("nodejs_heap_size_used_bytes", "gauge", "V8 heap in use.", mem.heapUsed),
  ];
}
