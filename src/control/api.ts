/**
 * The supervisor's control API (bearer token except /health):
 *   GET /health · GET /metrics · GET /api/status · POST /api/ops/<op.name> (JSON in, JSON out)
 *   POST /api/services/<name>/start|stop|restart · POST /api/shutdown
 */
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { alertInputSchema } from "../alerts/types.ts";
import type { Config } from "../config.ts";
import { AmiError } from "../core/errors.ts";
import { bearerMatches } from "../core/http/bearer.ts";
import { readJson } from "../core/http/body.ts";
import { allowedHosts, rebindingRefusal } from "../core/http/host-check.ts";
import { sendJson } from "../core/http/reply.ts";
import { createHttpListener } from "../core/http/server.ts";
import { safeDecode, type Target } from "../core/http/target.ts";
import type { Logger } from "../core/logger.ts";
import type { OpRegistry } from "../core/ops.ts";
import { makeContext } from "./context.ts";
import { invokeOp } from "./invoke.ts";
import { supervisorMetrics } from "./metrics.ts";
import type { Supervisor } from "./supervisor.ts";

export interface ControlApiOptions {
  supervisor: Supervisor;
  registry: OpRegistry;
  config: Config;
  configPath: string | undefined;
  token: string;
  log: Logger;
}

const MAX_BODY = 1024 * 1024;

export async function startControlApi(o: ControlApiOptions): Promise<Server> {
  const hosts = allowedHosts(o.config.control.host);
  // No CORS headers: no page of any origin may read this API.
  const listener = createHttpListener({
    name: "control API",
    log: o.log,
    handler: (req, res, target) => handle(o, hosts, req, res, target),
  });
  await listener.listen(o.config.control.port, o.config.control.host);
  return listener.server;
}

function sendText(res: ServerResponse, status: number, text: string, type: string): void {
  res.writeHead(status, { "Content-Type": type, "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}

async function handle(
  o: ControlApiOptions,
  hosts: Set<string>,
  req: IncomingMessage,
  res: ServerResponse,
  target: Target,
): Promise<void> {
  // DNS rebinding: a page whose name now points at 127.0.0.1 must not drive the supervisor.
  const refusal = rebindingRefusal(req, hosts);
  if (refusal !== null) return sendJson(res, 403, { errcode: "M_FORBIDDEN", error: refusal });
  const path = target.pathname;
  if (path === "/health") return sendJson(res, 200, { ok: true });
  if (!bearerMatches(req.headers.authorization, o.token)) {
    return sendJson(res, 401, { errcode: "M_UNKNOWN_TOKEN", error: "missing or wrong bearer token" });
  }
  if (req.method === "GET" && path === "/metrics") {
    const extra = o.supervisor.alerting?.prometheus() ?? [];
    return sendText(res, 200, supervisorMetrics(o.supervisor.status(), extra), "text/plain; version=0.0.4");
  }
  if (path.startsWith("/api/alerts")) return alertsRoute(o, req, res, path, target);
  if (req.method === "GET" && path === "/api/status") return sendJson(res, 200, o.supervisor.status());
  if (req.method !== "POST") throw new AmiError("M_UNRECOGNIZED", `no route ${req.method} ${path}`);

  if (path === "/api/shutdown") {
    sendJson(res, 200, { ok: true });
    setImmediate(() => void o.supervisor.shutdown().then(() => process.exit(0)));
    return;
  }
  const svc = /^\/api\/services\/([^/]+)\/(start|stop|restart)$/.exec(path);
  if (svc) {
    const r = o.supervisor.runner(decodeName(svc[1]));
    if (svc[2] !== "stop") {
      const body = (await readJson(req, MAX_BODY).catch(() => null)) as { workers?: unknown } | null;
      if (body && body.workers !== undefined) {
        if (!r.scalable) throw new AmiError("AMI_INVALID_INPUT", `${svc[1]} runs as one process: no 'workers'`);
        if (!Number.isInteger(body.workers) || (body.workers as number) < 1)
          throw new AmiError("AMI_INVALID_INPUT", "'workers' must be an integer >= 1");
        r.workers = body.workers as number;
      }
    }
    let changed: boolean;
    if (svc[2] === "start") changed = await r.start();
    else if (svc[2] === "stop") changed = await r.stop();
    else {
      await r.stop();
      changed = await r.start();
    }
    return sendJson(res, 200, { changed, status: r.status() });
  }
  const opm = /^\/api\/ops\/([^/]+)$/.exec(path);
  if (opm) {
    const op = o.registry.get(decodeName(opm[1]));
    if (!op || op.cliOnly) throw new AmiError("M_NOT_FOUND", `no operation '${opm[1]}'`);
    const input = await readJson(req, MAX_BODY);
    const ctx = makeContext({ config: o.config, configPath: o.configPath, log: o.log.child({ op: op.name }) });
    return sendJson(res, 200, (await invokeOp(op, input, ctx)) ?? null);
  }
  throw new AmiError("M_UNRECOGNIZED", `no route POST ${path}`);
}

/** GET /api/alerts[?all=1] · POST /api/alerts/ack {id} · POST /api/alerts/raise {kind,key,severity,summary} · POST /api/alerts/resolve {key} */
async function alertsRoute(
  o: ControlApiOptions,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  target: Target,
): Promise<void> {
  const alerting = o.supervisor.alerting;
  if (!alerting) throw new AmiError("AMI_UNAVAILABLE", "alerting is not running in this supervisor");
  const m = alerting.manager;
  if (req.method === "GET" && path === "/api/alerts") {
    const all = target.searchParams.get("all");
    return sendJson(res, 200, { alerts: m.list(all === "1" || all === "true"), counts: m.counts() });
  }
  if (req.method === "POST") {
    const body = (await readJson(req, MAX_BODY)) as Record<string, unknown> | null;
    const str = (k: string): string => {
      const v = body?.[k];
      if (typeof v !== "string" || v === "")
        throw new AmiError("AMI_INVALID_INPUT", `'${k}' must be a non-empty string`, {}, 400);
      return v;
    };
    if (path === "/api/alerts/ack") return sendJson(res, 200, { alert: m.ack(str("id")) });
    if (path === "/api/alerts/resolve") return sendJson(res, 200, { resolved: m.resolve(str("key")) });
    if (path === "/api/alerts/raise") {
      const parsed = alertInputSchema.safeParse(body);
      if (!parsed.success) throw new AmiError("AMI_INVALID_INPUT", `bad alert: ${parsed.error.message}`, {}, 400);
      return sendJson(res, 200, { alert: m.raise(parsed.data) });
    }
  }
  throw new AmiError("M_UNRECOGNIZED", `no route ${req.method} ${path}`);
}

function decodeName(s: string): string {
  const name = safeDecode(s);
  if (name === null) throw new AmiError("AMI_INVALID_INPUT", "malformed percent-encoding in the path", {}, 400);
  return name;
}
