/**
 * The supervisor's control API (bearer token except /health):
 *   GET /health · GET /metrics · GET /api/status · POST /api/ops/<op.name> (JSON in, JSON out)
 *   POST /api/services/<name>/start|stop|restart · POST /api/shutdown
 */
import { timingSafeEqual } from "node:crypto";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Config } from "../core/config.ts";
import { AmiError, toAmiError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import { createServer } from "../core/node-http.ts";
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
  const server = createServer((req, res) => {
    handle(o, req, res).catch((e) => {
      const err = toAmiError(e);
      if (err.code === "M_UNKNOWN") o.log.error("control API handler failed", { error: String(e) });
      send(res, err.status, err.toJSON());
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) =>
      reject(
        e.code === "EADDRINUSE"
          ? new AmiError("AMI_UNAVAILABLE", `control port ${o.config.control.host}:${o.config.control.port} is in use`)
          : e,
      ),
    );
    server.listen(o.config.control.port, o.config.control.host, resolve);
  });
  return server;
}

function send(res: ServerResponse, status: number, body: unknown, type = "application/json"): void {
  const text = type === "application/json" ? JSON.stringify(body) : String(body);
  res.writeHead(status, { "content-type": type });
  res.end(text);
}

function authorized(req: IncomingMessage, token: string): boolean {
  const got = Buffer.from(req.headers.authorization ?? "");
  const want = Buffer.from(`Bearer ${token}`);
  return got.length === want.length && timingSafeEqual(got, want);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new AmiError("M_TOO_LARGE", "request body too large");
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  if (!text) return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new AmiError("M_NOT_JSON", "request body is not valid JSON");
  }
}

async function handle(o: ControlApiOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? "/", "http://localhost");
  const path = url.pathname;
  if (path === "/health") return send(res, 200, { ok: true });
  if (!authorized(req, o.token)) {
    return send(res, 401, { errcode: "M_UNKNOWN_TOKEN", error: "missing or wrong bearer token" });
  }
  if (req.method === "GET" && path === "/metrics") {
    return send(res, 200, supervisorMetrics(o.supervisor.status()), "text/plain; version=0.0.4");
  }
  if (req.method === "GET" && path === "/api/status") return send(res, 200, o.supervisor.status());
  if (req.method !== "POST") throw new AmiError("M_UNRECOGNIZED", `no route ${req.method} ${path}`);

  if (path === "/api/shutdown") {
    send(res, 200, { ok: true });
    setImmediate(() => void o.supervisor.shutdown().then(() => process.exit(0)));
    return;
  }
  const svc = /^\/api\/services\/([^/]+)\/(start|stop|restart)$/.exec(path);
  if (svc) {
    const r = o.supervisor.runner(decodeURIComponent(svc[1]));
    let changed: boolean;
    if (svc[2] === "start") changed = await r.start();
    else if (svc[2] === "stop") changed = await r.stop();
    else {
      await r.stop();
      changed = await r.start();
    }
    return send(res, 200, { changed, status: r.status() });
  }
  const opm = /^\/api\/ops\/([^/]+)$/.exec(path);
  if (opm) {
    const op = o.registry.get(decodeURIComponent(opm[1]));
    if (!op || op.cliOnly) throw new AmiError("M_NOT_FOUND", `no operation '${opm[1]}'`);
    const input = await readJson(req);
    const ctx = makeContext({ config: o.config, configPath: o.configPath, log: o.log.child({ op: op.name }) });
    return send(res, 200, (await invokeOp(op, input, ctx)) ?? null);
  }
  throw new AmiError("M_UNRECOGNIZED", `no route POST ${path}`);
}
