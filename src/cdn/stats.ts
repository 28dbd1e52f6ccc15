/** The node's counters, its time-to-first-byte ring, and their Prometheus rendering. */

export interface EdgeStats {
  requests: number;
  hits: number;
  misses: number;
  coalesced: number;
  staleServed: number;
  revalidated: number;
  notModified: number;
  bypass: number;
  originRequests: number;
  originErrors: number;
  bytesServed: number;
  bytesFromOrigin: number;
  purges: number;
  purgedObjects: number;
  rejected: number;
  /** Lookups answered from the disk tier (the memory tier did not have the key). */
  diskReads: number;
  /** Refused for a missing, bad or expired URL signature (no upstream request made). */
  forbidden: number;
}

export function newStats(): EdgeStats {
  return {
    requests: 0,
    hits: 0,
    misses: 0,
    coalesced: 0,
    staleServed: 0,
    revalidated: 0,
    notModified: 0,
    bypass: 0,
    originRequests: 0,
    originErrors: 0,
    bytesServed: 0,
    bytesFromOrigin: 0,
    purges: 0,
    purgedObjects: 0,
    rejected: 0,
    forbidden: 0,
    diskReads: 0,
  };
}

/** Time to first byte over the last 1,024 requests. */
export class Latencies {
  private readonly xs = new Float64Array(1024);
  private n = 0;

  record(ms: number): void {
    this.xs[this.n++ % this.xs.length] = ms;
  }

  /** p50/p99 in ms. */
  percentiles(): { p50: number; p99: number } {
    const n = Math.min(this.n, this.xs.length);
    if (n === 0) return { p50: 0, p99: 0 };
    const xs = Array.from(this.xs.subarray(0, n)).sort((a, b) => a - b);
    return { p50: xs[Math.floor(n * 0.5)], p99: xs[Math.min(n - 1, Math.floor(n * 0.99))] };
  }
}

/** `/_ami/metrics`: every numeric stat as `ami_cdn_<snake_name>{region="R"} value`. */
export function metricsText(stats: Record<string, number | string>, region: string): string {
  const lines: string[] = [];
  for (const [k, v] of Object.entries(stats))
    if (typeof v === "number")
      lines.push(`ami_cdn_${k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}{region="${region}"} ${v}`);
  return `${lines.join("\n")}\n`;
}
