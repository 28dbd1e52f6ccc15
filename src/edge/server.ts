/** The edge service's listener and routes (see service.ts); the runtime does the work. */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { CasStore } from "../cas/types.ts";
import { AmiError } from "../core/errors.ts";
import { baseUrl, urlHost } from "../core/http/address.ts";
import { bearerMatches } from "../core/http/bearer.ts";
import { readBody, readJson } from "../core/http/body.ts";
import { sendJson } from "../core/http/reply.ts";
import { createHttpListener } from "../core/http/server.ts";
import { safeDecode, type Target } from "../core/http/target.ts";
import type { Logger } from "../core/logger.ts";
import type { RuntimePaths } from "../core/paths.ts";
import type { EdgeConfig } from "./config.ts";
import { parsePairs } from "./routes.ts";
import { EdgeRuntime } from "./runtime.ts";

/** A JSON field that must be a list of strings (absent: empty). */
function strings(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string"))
    throw new AmiError("AMI_INVALID_INPUT", "vars, secrets and crons are lists of strings");
  return v;
}

export interface EdgeServer {
  url: string;
  runtime: EdgeRuntime;
  close(): Promise<void>;
}

export async function startEdge(o: {
  config: EdgeConfig;
  paths: RuntimePaths;
  log: Logger;
  cas: CasStore;
  /** The control token the `edge.*` ops send; null: the API is refused (nothing to authenticate with). */
  token: string | null;
}): Promise<EdgeServer> {
  const c = o.config;
  let runtime: EdgeRuntime | undefined;
  let started: Promise<void> | undefined;
  const rt = () => {
    if (!runtime) throw new AmiError("AMI_UNAVAILABLE", "edge runtime starting");
    return runtime;
  };
  const listener = createHttpListener({
    name: "edge",
    log: o.log,
    handler: (req, res, t) => route(req, res, t),
  });
  const port = await listener.listen(c.port, c.host);
  const kvAddress = `${urlHost(c.host === "0.0.0.0" ? "127.0.0.1" : c.host === "::" ? "::1" : c.host)}:${port}`;
  runtime = new EdgeRuntime({ config: c, cas: o.cas, paths: o.paths, log: o.log, kvAddress });
  // Requests that come while deployed functions start (health included) wait for them: after `edge restart` the
  // first request finds its function, not a 404. KV stays open (nothing in a start calls it, but a function may).
  started = runtime.startAll();
  await started;

  async function route(req: IncomingMessage, res: ServerResponse, t: Target): Promise<void> {
    const p = t.pathname;
    if (!p.startsWith("/_ami/edge/kv/")) await started;
    if (p === "/health") return sendJson(res, 200, { ok: true });
    if (p === "/_ami/stats") return sendJson(res, 200, flatStats(rt()));
    if (p === "/metrics") {
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
      res.end(prometheus(rt()));
      return;
    }
    if (p.startsWith("/fn/")) {
      const rest = p.slice(4);
      const i = rest.indexOf("/");
      const name = safeDecode(i < 0 ? rest : rest.slice(0, i)) ?? "";
      return rt().invoke(name, req, res, (i < 0 ? "/" : rest.slice(i)) + t.search);
    }
    if (p.startsWith("/_ami/edge/kv/")) return kv(req, res, t);
    if (p.startsWith("/_ami/edge/api/")) {
      if (!o.token || !bearerMatches(req.headers.authorization, o.token))
        throw new AmiError("M_FORBIDDEN", "the edge API needs the control token", {}, 401);
      return api(req, res, p.slice("/_ami/edge/api/".length));
    }
    const fn = rt().routeFor(String(req.headers.host ?? ""), p);
    if (fn) return rt().invoke(fn, req, res, p + t.search);
    throw new AmiError("M_NOT_FOUND", `nothing at ${p} (functions answer at /fn/<name>/)`);
  }

  /** The KV binding: workerd injects its process's x-ami-edge-token, which names the function it serves. */
  async function kv(req: IncomingMessage, res: ServerResponse, t: Target): Promise<void> {
    const token = req.headers["x-ami-edge-token"];
    const fn = rt().kvFunction(typeof token === "string" ? token : undefined);
    if (!fn) throw new AmiError("M_FORBIDDEN", "not a function's KV binding");
    const rest = t.pathname.slice("/_ami/edge/kv/".length);
    if (rest === "list")
      return sendJson(res, 200, {
        keys: rt()
          .kv.list(fn, t.searchParams.get("prefix") ?? "")
          .map((name) => ({ name })),
        list_complete: true,
      });
    if (!rest.startsWith("v/")) throw new AmiError("M_NOT_FOUND", "unknown KV request");
    const key = safeDecode(rest.slice(2));
    if (!key || key.length > 512) throw new AmiError("AMI_INVALID_INPUT", "KV keys are 1-512 characters");
    if (req.method === "GET") {
      const body = rt().kv.get(fn, key);
      if (!body) throw new AmiError("M_NOT_FOUND", "no such key");
      res.writeHead(200, { "content-type": "application/octet-stream" });
      for await (const b of body) res.write(b);
      res.end();
      return;
    }
    if (req.method === "PUT") {
      await rt().kv.put(fn, key, await readBody(req, c.maxKvValueBytes));
      return sendJson(res, 200, {});
    }
    if (req.method === "DELETE") return sendJson(res, (await rt().kv.delete(fn, key)) ? 200 : 404, {});
    throw new AmiError("AMI_INVALID_INPUT", "KV takes GET, PUT, DELETE", {}, 405);
  }

  async function api(req: IncomingMessage, res: ServerResponse, what: string): Promise<void> {
    if (req.method === "GET" && what === "functions")
      return sendJson(res, 200, { functions: rt().stats(), records: rt().registry.list() });
    if (req.method !== "POST") throw new AmiError("AMI_INVALID_INPUT", "POST expected", {}, 405);
    const body = (await readJson(req, c.maxModuleBytes * 2 + 65536)) as Record<string, unknown>;
    const name = typeof body.function === "string" ? body.function : "";
    if (what === "deploy") {
      if (typeof body.code !== "string") throw new AmiError("AMI_INVALID_INPUT", "code: required (the module's text)");
      const v = await rt().deploy(name, body.code, {
        route: typeof body.route === "string" ? body.route : null,
        region: typeof body.region === "string" ? body.region : null,
        vars: parsePairs("var", strings(body.vars)),
        secrets: parsePairs("secret", strings(body.secrets)),
        crons: strings(body.crons),
      });
      return sendJson(res, 200, { function: name, ...v, url: `${url}/fn/${name}/` });
    }
    if (what === "trigger") {
      const r = await rt().trigger(name, typeof body.cron === "string" ? body.cron : "");
      return sendJson(res, 200, { function: name, ...r });
    }
    if (what === "rollback") {
      const v = await rt().rollback(name, typeof body.version === "number" ? body.version : undefined);
      return sendJson(res, 200, { function: name, ...v });
    }
    if (what === "delete") {
      const f = await rt().delete(name);
      return sendJson(res, 200, { function: name, versions: f.versions.length });
    }
    throw new AmiError("M_NOT_FOUND", `unknown edge API call '${what}'`);
  }

  const url = baseUrl("http", c.host, (listener.server.address() as AddressInfo).port);
  return {
    url,
    runtime,
    async close() {
      await runtime?.close();
      await listener.close();
    },
  };
}

/** The monitor's key figures: totals, then per function (the first 20 by name) invocations, errors, CPU, p99. */
function flatStats(r: EdgeRuntime): Record<string, number> {
  const s = r.stats();
  const sum = (k: "invocations" | "errors" | "cronRuns" | "cpuKills" | "memoryKills" | "cpuMs") =>
    s.reduce((a, f) => a + f[k], 0);
  const out: Record<string, number> = {
    functions: s.length,
    invocations: sum("invocations"),
    errors: sum("errors"),
    cronRuns: sum("cronRuns"),
    idleProcesses: r.pool.idle,
    cpuKills: sum("cpuKills"),
    memoryKills: sum("memoryKills"),
    cpuMs: sum("cpuMs"),
    p99Ms: Math.max(0, ...s.map((f) => f.p99Ms)),
  };
  for (const f of s.slice(0, 20)) {
    out[`fn_${f.name}_invocations`] = f.invocations;
    out[`fn_${f.name}_errors`] = f.errors;
    out[`fn_${f.name}_cpu_ms`] = f.cpuMs;
    out[`fn_${f.name}_p99_ms`] = f.p99Ms;
    out[`fn_${f.name}_rss_bytes`] = f.running ? f.rssBytes : 0;
  }
  return out;
}

function prometheus(r: EdgeRuntime): string {
  const lines: string[] = [];
  const metric = (
    n: string,
    help: string,
    type: string,
    get: (f: ReturnType<EdgeRuntime["stats"]>[number]) => number,
  ) => {
    lines.push(`# HELP ${n} ${help}`, `# TYPE ${n} ${type}`);
    for (const f of r.stats()) lines.push(`${n}{function="${f.name}"} ${get(f)}`);
  };
  metric("ami_edge_invocations_total", "Requests run by the function", "counter", (f) => f.invocations);
  metric("ami_edge_errors_total", "Requests answered 5xx or failed", "counter", (f) => f.errors);
  metric("ami_edge_cron_runs_total", "Cron triggers (and edge trigger) run", "counter", (f) => f.cronRuns);
  metric("ami_edge_cpu_kills_total", "Processes killed at the CPU limit", "counter", (f) => f.cpuKills);
  metric("ami_edge_memory_kills_total", "Processes killed at the memory limit", "counter", (f) => f.memoryKills);
  metric(
    "ami_edge_cpu_seconds_total",
    "CPU time of the function's workerd processes",
    "counter",
    (f) => f.cpuMs / 1000,
  );
  metric("ami_edge_rss_bytes", "Resident memory of the function's workerd process", "gauge", (f) => f.rssBytes);
  metric("ami_edge_request_p99_seconds", "p99 of the latest 1024 request durations", "gauge", (f) => f.p99Ms / 1000);
  return `${lines.join("\n")}\n`;
}
