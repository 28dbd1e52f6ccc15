/**
 * A request through the edge service to a function's process: method, headers (hop-by-hop and every x-ami-edge-*
 * dropped: those are our control headers) and body streamed both ways over the process's unix socket, with the
 * wall-time limit, the watchdog's limit errors and the function's metrics.
 */
import { type Agent, type IncomingMessage, request, type ServerResponse } from "node:http";
import { AmiError } from "../core/errors.ts";
import { sendError } from "../core/http/reply.ts";
import type { EdgeConfig } from "./config.ts";
import type { FunctionProcess, KillReason } from "./process.ts";
import type { WorkerdProcess } from "./workerd.ts";

export interface FunctionMetrics {
  invocations: number;
  errors: number;
  cpuKills: number;
  memoryKills: number;
  cronRuns: number;
  /** Latest request durations (ms), a ring for p50/p99. */
  latencies: number[];
  latencyAt: number;
}

export const newMetrics = (): FunctionMetrics => ({
  invocations: 0,
  errors: 0,
  cpuKills: 0,
  memoryKills: 0,
  cronRuns: 0,
  latencies: [],
  latencyAt: 0,
});

const RING = 1024;
const HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"]);

export function limitError(name: string, reason: KillReason, c: EdgeConfig): AmiError {
  return reason === "cpu"
    ? new AmiError(
        "AMI_EDGE_CPU_LIMIT",
        `function '${name}' exceeded its CPU limit (${c.cpuMsPerRequest} ms per request); its process was restarted`,
      )
    : new AmiError(
        "AMI_EDGE_MEMORY_LIMIT",
        `function '${name}' exceeded its memory limit (${c.memoryMb} MB); its process was restarted`,
      );
}

export async function proxyTo(o: {
  name: string;
  proc: FunctionProcess;
  agent: Agent;
  metrics: FunctionMetrics;
  config: EdgeConfig;
  req: IncomingMessage;
  res: ServerResponse;
  path: string;
}): Promise<void> {
  const { name, proc, req, res, config: c } = o;
  const m = o.metrics;
  const t0 = performance.now();
  m.invocations++;
  const done = (ok: boolean) => {
    if (!ok) m.errors++;
    m.latencies[m.latencyAt] = performance.now() - t0;
    m.latencyAt = (m.latencyAt + 1) % RING;
  };
  let wp: WorkerdProcess;
  try {
    wp = await proc.ready();
  } catch (e) {
    done(false);
    throw new AmiError("AMI_UNAVAILABLE", `function '${name}' cannot start: ${(e as Error).message}`);
  }
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(req.headers))
    if (v !== undefined && !HOP.has(k) && !k.startsWith("x-ami-edge-")) headers[k] = v;
  await new Promise<void>((resolve) => {
    let settled = false;
    const fail = (e: AmiError) => {
      if (settled) return;
      settled = true;
      proc.leave(flight);
      clearTimeout(timer);
      out.destroy();
      done(false);
      if (res.headersSent) res.destroy();
      else sendError(res, e);
      resolve();
    };
    const timer = setTimeout(
      () => fail(new AmiError("AMI_TIMEOUT", `function '${name}' did not answer within ${c.requestTimeoutMs} ms`)),
      c.requestTimeoutMs,
    );
    const flight = proc.enter(wp, (reason: KillReason) => fail(limitError(name, reason, c)));
    const out = request({ socketPath: wp.socket, path: o.path, method: req.method, headers, agent: o.agent }, (up) => {
      const h: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(up.headers)) if (v !== undefined && !HOP.has(k)) h[k] = v;
      res.writeHead(up.statusCode ?? 502, h);
      up.pipe(res);
      up.once("end", () => {
        if (settled) return;
        settled = true;
        proc.leave(flight);
        clearTimeout(timer);
        done((up.statusCode ?? 502) < 500);
        resolve();
      });
      up.once("error", () => fail(new AmiError("AMI_UNAVAILABLE", `function '${name}' failed mid-response`)));
    });
    out.once("error", (e) => {
      // The watchdog's kill already answered with the limit's error; anything else is the process failing.
      fail(new AmiError("AMI_UNAVAILABLE", `function '${name}' failed: ${e.message}`));
    });
    res.once("close", () => {
      if (!settled) fail(new AmiError("AMI_UNAVAILABLE", "client went away"));
    });
    req.pipe(out);
  });
}
