/**
 * `ami-streams cdn deploy|list|stats|purge|remove` (`cdn start|stop|status|restart`: the supervised node) (MCP: cdn_deploy, ...). Nodes run as
 * `ami-streams serve cdn` processes (one per region, own port) recorded in <home>/run/cdn/nodes.json; purges fan
 * out to every node and report each node's confirmation.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, openSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { binEntry } from "../control/bin-path.ts";
import { HOME_ENV, isOurProcess } from "../control/proc.ts";
import { AmiError } from "../core/errors.ts";
import { defineOp, type OpContext } from "../core/ops.ts";
import { allNodes, type DeployedNode, nodesDir, readNodes, writeNodes } from "./nodes.ts";
import { NODE_ENV } from "./service.ts";
import { cdnSignOp } from "./sign-op.ts";

const list = (s: string | undefined): string[] =>
  (s ?? "")
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean);

async function call(url: string, init: RequestInit = {}, timeoutMs = 3000): Promise<unknown> {
  const r = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  const body = await r.json().catch(() => null);
  if (!r.ok) throw new Error(`${r.status} ${JSON.stringify(body)}`);
  return body;
}

const nodeView = z.object({
  region: z.string(),
  url: z.string(),
  pid: z.number().nullable(),
  kind: z.string(),
  origin: z.string(),
  parents: z.array(z.string()),
  up: z.boolean(),
});

async function view(n: DeployedNode): Promise<z.infer<typeof nodeView>> {
  const up = await call(`${n.url}/health`, {}, 1500).then(
    () => true,
    () => false,
  );
  return { region: n.region, url: n.url, pid: n.pid, kind: n.kind, origin: n.origin, parents: n.parents, up };
}

export const cdnDeployOp = defineOp({
  name: "cdn.deploy",
  summary: "Start an edge node for a region (own port; parents = shields tried before the origin)",
  input: z
    .object({
      region: z
        .string()
        .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "must be lowercase letters, digits and '-'")
        .describe("region, e.g. us-east-1"),
      port: z.number().int().min(0).max(65535).default(0).describe("port (0: any free one)"),
      origin: z.string().url().optional().describe("origin URL (default: cdn.origin, else the media service)"),
      parent: z.string().optional().describe("parent cache URLs (shields), comma-separated"),
      signingSecret: z
        .string()
        .min(16)
        .optional()
        .describe("signed URLs: this origin's HMAC secret (≥ 16 characters); see `cdn sign`"),
      signed: z.boolean().default(false).describe("signed URLs with a new random secret (kept in nodes.json, 0600)"),
    })
    .strict(),
  output: nodeView,
  annotations: { readOnly: false, destructive: false, idempotent: false, openWorld: false },
  human: (n) =>
    `edge node ${n.region} at ${n.url} (pid ${n.pid}) → ${n.parents.length ? `${n.parents.join(", ")} → ` : ""}${n.origin}`,
  async run({ region, port, origin, parent, signingSecret, signed }, ctx) {
    const parents = list(parent);
    for (const p of parents)
      if (!/^https?:\/\//.test(p)) throw new AmiError("AMI_INVALID_INPUT", `'parent' ${p} must be an http(s) URL`);
    const nodes = readNodes(ctx.paths);
    const old = nodes.find((n) => n.region === region);
    if (old?.pid && isOurProcess(old.pid, ["serve", "cdn"]))
      throw new AmiError(
        "AMI_INVALID_INPUT",
        `region ${region} already has a node at ${old.url} (cdn remove --region ${region} first)`,
      );
    const urlFile = join(nodesDir(ctx.paths), `${region}.url`);
    rmSync(urlFile, { force: true });
    const override = {
      region,
      port,
      ...(origin ? { origin } : {}),
      parents: parents.length ? parents : ctx.config.cdn.parents,
      signingSecret: signingSecret ?? (signed ? randomBytes(32).toString("base64url") : ctx.config.cdn.signingSecret),
    };
    const log = openSync(ctx.paths.logFile(`cdn-${region}`), "a", 0o600);
    const child = spawn(
      process.execPath,
      [binEntry, "serve", "cdn", ...(ctx.configPath ? ["--config", ctx.configPath] : [])],
      {
        detached: true,
        stdio: ["ignore", log, log],
        env: { ...process.env, [HOME_ENV]: ctx.paths.home, [NODE_ENV]: JSON.stringify(override) },
      },
    );
    child.unref();
    const deadline = Date.now() + 20_000;
    let exited: number | null = null;
    child.once("exit", (code) => {
      exited = code ?? -1;
    });
    while (!existsSync(urlFile)) {
      if (exited !== null || Date.now() > deadline) {
        if (exited === null) child.kill("SIGTERM");
        const tail = readFileSync(ctx.paths.logFile(`cdn-${region}`), "utf8")
          .split("\n")
          .slice(-5)
          .join("\n");
        throw new AmiError(
          "AMI_UNAVAILABLE",
          `edge node ${region} did not start (log ${ctx.paths.logFile(`cdn-${region}`)}):\n${tail}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const node: DeployedNode = {
      region,
      url: readFileSync(urlFile, "utf8").trim(),
      pid: child.pid ?? null,
      origin: origin ?? ctx.config.cdn.origin ?? "media",
      parents: override.parents,
      startedAt: Date.now(),
      kind: "deployed",
      signingSecret: override.signingSecret,
    };
    writeNodes(ctx.paths, [...nodes.filter((n) => n.region !== region), node]);
    return view(node);
  },
});

export const cdnListOp = defineOp({
  name: "cdn.list",
  summary: "Edge nodes of this machine: region, URL, parents, origin, up or down",
  input: z.object({}).strict(),
  output: z.object({ nodes: z.array(nodeView) }),
  annotations: { readOnly: true, destructive: false, idempotent: true, openWorld: false },
  human: (o) =>
    o.nodes.length
      ? o.nodes
          .map(
            (n) =>
              `${n.region.padEnd(14)} ${n.up ? "up  " : "DOWN"} ${n.url} → ${[...n.parents, n.origin].join(" → ")}`,
          )
          .join("\n")
      : "no edge nodes (ami-streams cdn deploy --region R)",
  async run(_i, ctx) {
    return { nodes: await Promise.all(allNodes(ctx).map(view)) };
  },
});

const statsOut = z.object({
  nodes: z.array(
    z.object({
      region: z.string(),
      url: z.string(),
      stats: z.record(z.string(), z.unknown()).nullable(),
      error: z.string().nullable(),
    }),
  ),
});

async function gatherStats(ctx: OpContext, region?: string) {
  const nodes = allNodes(ctx).filter((n) => !region || n.region === region);
  if (region && nodes.length === 0) throw new AmiError("AMI_INVALID_INPUT", `no edge node for region ${region}`);
  return {
    nodes: await Promise.all(
      nodes.map(async (n) => {
        try {
          return {
            region: n.region,
            url: n.url,
            stats: (await call(`${n.url}/_ami/stats`)) as Record<string, unknown>,
            error: null,
          };
        } catch (e) {
          return { region: n.region, url: n.url, stats: null, error: (e as Error).message };
        }
      }),
    ),
  };
}

const humanStats = (o: z.infer<typeof statsOut>) =>
  o.nodes
    .map((n) =>
      n.stats
        ? `${n.region}: ${n.stats.requests} requests, hit ratio ${(Number(n.stats.hitRatio) * 100).toFixed(1)} %, ${n.stats.objects} objects, ${n.stats.memoryBytes} bytes, origin requests ${n.stats.originRequests}, p99 ${Number(n.stats.p99Ms).toFixed(2)} ms`
        : `${n.region}: DOWN (${n.error})`,
    )
    .join("\n");

export const cdnStatsOp = defineOp({
  name: "cdn.stats",
  summary: "Per-node hit ratio, origin offload, bytes, objects and p99 time to first byte",
  input: z.object({ region: z.string().optional().describe("one region (default: all)") }).strict(),
  output: statsOut,
  annotations: { readOnly: true, destructive: false, idempotent: true, openWorld: false },
  human: humanStats,
  run: ({ region }, ctx) => gatherStats(ctx, region),
});

export const cdnPurgeOp = defineOp({
  name: "cdn.purge",
  summary: "Purge by URL, prefix or surrogate key (tag) on every edge node, each confirming",
  input: z
    .object({
      url: z.string().optional().describe("URLs or paths, comma-separated"),
      prefix: z.string().optional().describe("path prefixes, comma-separated"),
      tag: z.string().optional().describe("surrogate keys (Surrogate-Key / Cache-Tag), comma-separated"),
      soft: z
        .boolean()
        .default(false)
        .describe("mark stale (revalidate; stale-if-error still usable) instead of dropping"),
    })
    .strict(),
  output: z.object({
    confirmed: z.boolean(),
    nodes: z.array(z.object({ region: z.string(), purged: z.number().nullable(), error: z.string().nullable() })),
  }),
  annotations: { readOnly: false, destructive: true, idempotent: true, openWorld: false },
  human: (o) =>
    [
      ...o.nodes.map((n) => (n.error ? `${n.region}: FAILED (${n.error})` : `${n.region}: ${n.purged} purged`)),
      o.confirmed ? "confirmed by every node" : "NOT confirmed by every node",
    ].join("\n"),
  async run({ url, prefix, tag, soft }, ctx) {
    const body = { urls: list(url), prefixes: list(prefix), tags: list(tag), soft };
    if (!body.urls.length && !body.prefixes.length && !body.tags.length)
      throw new AmiError("AMI_INVALID_INPUT", "give --url, --prefix or --tag");
    const token = ctx.config.cdn.purgeToken;
    const nodes = allNodes(ctx);
    if (nodes.length === 0) throw new AmiError("AMI_NOT_RUNNING", "no edge nodes (ami-streams cdn deploy --region R)");
    const out = await Promise.all(
      nodes.map(async (n) => {
        try {
          const r = (await call(`${n.url}/_ami/purge`, {
            method: "POST",
            headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
            body: JSON.stringify(body),
          })) as { purged: number };
          return { region: n.region, purged: r.purged, error: null };
        } catch (e) {
          return { region: n.region, purged: null, error: (e as Error).message };
        }
      }),
    );
    return { confirmed: out.every((n) => n.error === null), nodes: out };
  },
});

export const cdnRemoveOp = defineOp({
  name: "cdn.remove",
  summary: "Stop a deployed edge node and forget it",
  input: z.object({ region: z.string().describe("the node's region") }).strict(),
  output: z.object({ region: z.string(), stopped: z.boolean() }),
  annotations: { readOnly: false, destructive: true, idempotent: true, openWorld: false },
  human: (o) => `${o.region}: ${o.stopped ? "stopped" : "was not running"}, removed`,
  async run({ region }, ctx) {
    const nodes = readNodes(ctx.paths);
    const n = nodes.find((x) => x.region === region);
    if (!n) throw new AmiError("AMI_INVALID_INPUT", `no deployed edge node for region ${region} (cdn list)`);
    let stopped = false;
    if (n.pid && isOurProcess(n.pid, ["serve", "cdn"])) {
      process.kill(n.pid, "SIGTERM");
      stopped = true;
      for (let i = 0; i < 100 && isOurProcess(n.pid, ["serve", "cdn"]); i++)
        await new Promise((r) => setTimeout(r, 50));
    }
    writeNodes(
      ctx.paths,
      nodes.filter((x) => x.region !== region),
    );
    rmSync(join(nodesDir(ctx.paths), `${region}.url`), { force: true });
    return { region, stopped };
  },
});

export const cdnOps = [cdnDeployOp, cdnListOp, cdnStatsOp, cdnPurgeOp, cdnRemoveOp, cdnSignOp];
