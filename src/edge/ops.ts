/** `ami-streams edge deploy|list|logs|tail|trigger|rollback|delete`: calls to the running edge service's API (service.ts). */
import { closeSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { z } from "zod";
import { readControlToken } from "../control/client.ts";
import { ensureSupervisor, waitHealthy } from "../control/daemon.ts";
import { AmiError, type ErrorCode } from "../core/errors.ts";
import { defineOp, type OpContext } from "../core/ops.ts";
import { edgeService } from "./service.ts";

const NOT_RUNNING = "edge is not running: enable it (edge.enabled: true) and start it with `ami-streams edge start`";
const fnName = z.string().min(1).max(63).describe("function name");

async function send(ctx: OpContext, method: string, path: string, body?: unknown): Promise<Response> {
  const token = readControlToken(ctx.config, ctx.paths);
  return fetch(`${edgeService.baseUrl(ctx.config)}/_ami/edge/api/${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: ctx.signal,
  });
}

/** One API call; a change (deploy) starts the service first when it is enabled and not running. */
async function edgeRequest<T>(
  ctx: OpContext,
  method: string,
  path: string,
  body?: unknown,
  autostart = false,
): Promise<T> {
  let res: Response;
  try {
    res = await send(ctx, method, path, body);
  } catch (e) {
    if (ctx.signal.aborted) throw e;
    if (!autostart || !edgeService.enabled(ctx.config)) throw new AmiError("AMI_NOT_RUNNING", NOT_RUNNING);
    const { client, spawned } = await ensureSupervisor(ctx, ["edge"]);
    if (!spawned) await client.request("POST", "/api/services/edge/start");
    await waitHealthy(client, ["edge"], ctx);
    res = await send(ctx, method, path, body);
  }
  const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (!res.ok) {
    const code = (typeof json.errcode === "string" ? json.errcode : "AMI_UNAVAILABLE") as ErrorCode;
    throw new AmiError(
      code,
      typeof json.error === "string" ? json.error : `edge answered ${res.status}`,
      {},
      res.status,
    );
  }
  return json as T;
}

const version = z.object({
  function: z.string(),
  version: z.number(),
  id: z.string(),
  sha256: z.string(),
  size: z.number(),
  route: z.string().nullable(),
  region: z.string().nullable(),
  vars: z.record(z.string(), z.string()).optional(),
  crons: z.array(z.string()).optional(),
  deployedAt: z.string(),
  url: z.string().optional(),
});

export const edgeDeploy = defineOp({
  name: "edge.deploy",
  summary: "Deploy a Workers-compatible ES module (export default { fetch }) as a new version of a function",
  description:
    "The module runs in its own workerd process with env.KV (KV on the content-addressed store) and env.ORIGIN " +
    "(edge.origin); any other fetch() is denied and host files are out of reach. The new version takes traffic only " +
    "once workerd has started it: a module that does not parse is refused and the running version keeps serving.",
  input: z
    .object({
      function: fnName,
      file: z.string().min(1).optional().describe("the module file (CLI)"),
      code: z.string().min(1).optional().describe("the module's text (instead of file; MCP)"),
      route: z.string().min(1).optional().describe("also serve requests matching this pattern (/path/*, host/path/*)"),
      region: z.string().min(1).optional().describe("region label of the edge node it runs on"),
      var: z.array(z.string()).default([]).describe("NAME=value in the function's env (shown by edge list)"),
      secret: z
        .array(z.string())
        .default([])
        .describe("NAME=value in the function's env, kept across deploys, never shown (NAME= removes it)"),
      cron: z.array(z.string()).default([]).describe("cron trigger (5 fields, UTC) running the scheduled() handler"),
    })
    .strict(),
  output: version,
  annotations: { readOnly: false, destructive: false, idempotent: false },
  short: { f: "file" },
  human: (v) =>
    `deployed ${v.function} v${v.version} (${v.size} bytes, sha256 ${v.sha256.slice(0, 12)}) ${v.url ?? ""}`,
  async run(i, ctx) {
    if ((i.file === undefined) === (i.code === undefined))
      throw new AmiError("AMI_INVALID_INPUT", "give exactly one of --file or code");
    let code = i.code;
    if (i.file !== undefined) {
      try {
        code = readFileSync(resolve(i.file), "utf8");
      } catch (e) {
        throw new AmiError("AMI_INVALID_INPUT", `cannot read ${i.file}: ${(e as NodeJS.ErrnoException).code ?? e}`);
      }
    }
    const body = {
      function: i.function,
      code,
      route: i.route,
      region: i.region,
      vars: i.var,
      secrets: i.secret,
      crons: i.cron,
    };
    return edgeRequest(ctx, "POST", "deploy", body, true);
  },
});

export const edgeRollback = defineOp({
  name: "edge.rollback",
  summary: "Serve an earlier version of a function again (default: the one before the active one)",
  input: z
    .object({ function: fnName, version: z.number().int().positive().optional().describe("version to serve") })
    .strict(),
  output: version,
  annotations: { readOnly: false, destructive: false, idempotent: true },
  human: (v) => `${v.function} now serves v${v.version}`,
  run: (i, ctx) => edgeRequest(ctx, "POST", "rollback", i),
});

export const edgeDelete = defineOp({
  name: "edge.delete",
  summary: "Stop a function and delete it, its versions and its KV namespace",
  input: z.object({ function: fnName }).strict(),
  output: z.object({ function: z.string(), versions: z.number() }),
  annotations: { readOnly: false, destructive: true, idempotent: false },
  human: (o) => `deleted ${o.function} (${o.versions} versions)`,
  run: (i, ctx) => edgeRequest(ctx, "POST", "delete", i),
});

const fnStats = z.object({
  name: z.string(),
  version: z.number(),
  route: z.string().nullable(),
  region: z.string().nullable(),
  vars: z.record(z.string(), z.string()),
  secrets: z.array(z.string()).describe("names only: values are never read back"),
  crons: z.array(z.string()),
  pid: z.number().nullable(),
  running: z.boolean().describe("false: stopped while idle, started again by the next request"),
  dedicated: z.boolean().describe("served by its own process (true) or still by the pooled one it was loaded into"),
  invocations: z.number(),
  errors: z.number(),
  cronRuns: z.number(),
  cpuKills: z.number(),
  memoryKills: z.number(),
  restarts: z.number(),
  cpuMs: z.number(),
  rssBytes: z.number(),
  p50Ms: z.number(),
  p99Ms: z.number(),
});

export const edgeList = defineOp({
  name: "edge.list",
  summary: "Deployed functions with their active version, invocations, errors, limit kills, CPU time and p99",
  input: z.object({}).strict(),
  output: z.object({ functions: z.array(fnStats) }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  human: (o) =>
    o.functions.length === 0
      ? "no edge functions"
      : o.functions
          .map(
            (f) =>
              `${f.name} v${f.version}${f.route ? ` route ${f.route}` : ""}${f.region ? ` region ${f.region}` : ""}` +
              `${f.crons.length ? ` cron ${f.crons.join(" | ")}` : ""}${f.secrets.length ? ` secrets ${f.secrets.join(",")}` : ""}` +
              `${f.running ? "" : " (idle, stopped)"}: ` +
              `${f.invocations} calls, ${f.errors} errors, ${f.cpuKills} cpu / ${f.memoryKills} memory kills, ` +
              `cpu ${f.cpuMs} ms, p99 ${f.p99Ms} ms, rss ${Math.round(f.rssBytes / 1048576)} MB`,
          )
          .join("\n"),
  async run(_i, ctx) {
    const r = await edgeRequest<{ functions: z.infer<typeof fnStats>[] }>(ctx, "GET", "functions");
    return { functions: r.functions };
  },
});

export const edgeLogs = defineOp({
  name: "edge.logs",
  summary: "The latest lines a function's workerd process wrote (console.log, uncaught errors)",
  input: z.object({ function: fnName, lines: z.number().int().positive().max(10000).default(100) }).strict(),
  output: z.object({ function: z.string(), lines: z.array(z.string()) }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  short: { n: "lines" },
  human: (o) => o.lines.join("\n"),
  async run(i, ctx) {
    let text = "";
    try {
      text = readFileSync(ctx.paths.logFile(`edge-${i.function}`), "utf8");
    } catch {
      throw new AmiError("M_NOT_FOUND", `no logs for edge function '${i.function}'`);
    }
    return { function: i.function, lines: text.split("\n").filter(Boolean).slice(-i.lines) };
  },
});

export const edgeTail = defineOp({
  name: "edge.tail",
  summary: "Follow a function's log live (console.log, uncaught errors, limit kills) as its requests run",
  description: "Prints new lines as they are written, for `seconds` (0: until interrupted), then returns them.",
  input: z
    .object({
      function: fnName,
      seconds: z.number().min(0).max(86400).default(0).describe("how long; 0: until Ctrl-C"),
    })
    .strict(),
  output: z.object({ function: z.string(), lines: z.array(z.string()) }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  human: () => "",
  async run(i, ctx) {
    const file = ctx.paths.logFile(`edge-${i.function}`);
    const sizeOf = () => {
      try {
        return statSync(file).size;
      } catch {
        return 0;
      }
    };
    let at = sizeOf();
    let partial = "";
    const lines: string[] = [];
    const end = i.seconds > 0 ? Date.now() + i.seconds * 1000 : Number.POSITIVE_INFINITY;
    while (!ctx.signal.aborted && Date.now() < end) {
      await new Promise((r) => setTimeout(r, Math.max(0, Math.min(200, end - Date.now()))));
      const size = sizeOf();
      if (size < at) at = 0; // rotated or truncated
      if (size === at) continue;
      const fd = openSync(file, "r");
      const buf = Buffer.alloc(Math.min(size - at, 1 << 20));
      const n = readSync(fd, buf, 0, buf.length, at);
      closeSync(fd);
      at += n;
      const text = partial + buf.subarray(0, n).toString("utf8");
      const cut = text.lastIndexOf("\n");
      partial = cut < 0 ? text : text.slice(cut + 1);
      for (const l of cut < 0 ? [] : text.slice(0, cut).split("\n")) {
        if (lines.length < 10_000) lines.push(l);
        ctx.print(l);
      }
    }
    return { function: i.function, lines };
  },
});

export const edgeTrigger = defineOp({
  name: "edge.trigger",
  summary: "Run a function's scheduled() handler now, as its cron trigger would",
  input: z
    .object({ function: fnName, cron: z.string().default("").describe("the cron text the handler sees") })
    .strict(),
  output: z.object({ function: z.string(), status: z.number(), text: z.string() }),
  annotations: { readOnly: false, destructive: false, idempotent: false },
  human: (o) => (o.status === 204 ? `${o.function}: scheduled() ran` : `${o.function}: ${o.status} ${o.text}`),
  run: (i, ctx) => edgeRequest(ctx, "POST", "trigger", i),
});

export const edgeOps = [edgeDeploy, edgeRollback, edgeDelete, edgeList, edgeLogs, edgeTail, edgeTrigger];
