/** Renders a monitor snapshot as a terminal frame (ANSI colours only when asked). */
import { bytes, duration, table } from "../control/format.ts";
import type { MonitorSnapshot } from "./collect.ts";

const colours: Record<string, string> = {
  running: "32",
  starting: "33",
  backoff: "31",
  failed: "31",
  unhealthy: "31",
  stopping: "33",
  stopped: "90",
};

const fig = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(n < 10 ? 2 : 1));
const pct = (n: number | null) => (n === null ? "-" : `${n.toFixed(1)}%`);

export function renderFrame(s: MonitorSnapshot, ansi: boolean): string {
  const paint = (state: string) => (ansi ? `\x1b[${colours[state] ?? "0"}m${state}\x1b[0m` : state);
  const sup = s.supervisor.running
    ? `supervisor pid ${s.supervisor.pid}  cpu ${pct(s.supervisor.cpuPercent)}  rss ${bytes(s.supervisor.rssBytes)}`
    : "supervisor: not running (ami-streams up)";
  const rows = s.services.map((r) => [
    r.name,
    r.state,
    r.pid ? String(r.pid) : "-",
    duration(r.uptimeS),
    pct(r.cpuPercent),
    bytes(r.rssBytes),
    String(r.restarts),
    Object.entries(r.stats)
      .map(([k, v]) => `${k}=${fig(v)}`)
      .join("  "),
  ]);
  let body = s.services.length
    ? table(["SERVICE", "STATE", "PID", "UPTIME", "CPU", "RSS", "RESTARTS", "KEY FIGURES"], rows)
    : "(no services defined)";
  // Colour after layout so escape codes do not skew column widths.
  if (ansi)
    for (const r of s.services)
      body = body.replace(new RegExp(`^(${r.name}\\s+)${r.state}`, "m"), `$1${paint(r.state)}`);
  const fed = s.services.flatMap((r) =>
    r.federation.map((d) => [
      r.name,
      d.destination,
      String(d.queued),
      d.lastSuccessSAgo === null ? "never" : `${duration(d.lastSuccessSAgo)} ago`,
      d.backoffS > 0 ? duration(d.backoffS) : "-",
    ]),
  );
  if (fed.length)
    body += `\n\nfederation destinations (deepest queues first)\n${table(
      ["SERVICE", "DESTINATION", "QUEUED", "LAST SUCCESS", "BACKOFF"],
      fed,
    )}`;
  const fns = s.services.flatMap((r) =>
    (r.functions ?? []).map((f) => [
      r.name,
      f.function,
      String(f.invocations),
      String(f.errors),
      `${fig(f.cpuMs)} ms`,
      `${fig(f.p99Ms)} ms`,
      f.rssBytes > 0 ? bytes(f.rssBytes) : "idle",
    ]),
  );
  if (fns.length)
    body += `\n\nedge functions (busiest first)\n${table(
      ["SERVICE", "FUNCTION", "CALLS", "ERRORS", "CPU", "P99", "RSS"],
      fns,
    )}`;
  const head = ansi ? `\x1b[1mami-streams monitor\x1b[0m  ${s.at}` : `ami-streams monitor  ${s.at}`;
  const a = s.alerts;
  const alerts = a
    ? `\nalerts: ${a.firing} firing${a.acked ? ` (${a.acked} acked)` : ""}${a.firing ? " (ami-streams alerts list)" : ""}`
    : "";
  return `${head}\n${sup}${alerts}\n\n${body}\n`;
}
