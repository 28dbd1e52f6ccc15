/**
 * `ami-streams cdn deploy|list|stats|purge|remove|sign` (`cdn start|stop|status|restart`: the config's node) (MCP:
 * cdn_deploy, ...). Deployed nodes are instances of the `cdn` service (`serve cdn --instance <region>`, unit
 * `cdn-<region>`, own port) under the supervisor, recorded in <home>/run/cdn/nodes.json; purges fan out to every
 * node and report each node's confirmation.
 */
import { randomBytes } from "node:crypto";
import { type AddressInfo, createServer } from "node:net";
import { z } from "zod";
import { connectControl } from "../control/client.ts";
import { currentStatus, ensureSupervisor, waitHealthy } from "../control/daemon.ts";
import { hasMarkers, homeProcesses, isOurProcess } from "../control/proc.ts";
import type { SupervisorStatus } from "../control/state.ts";
import { AmiError } from "../core/errors.ts";
import { baseUrl } from "../core/http/address.ts";
import { defineOp, type OpContext } from "../core/ops.ts";
import { allNodes, type DeployedNode, readNodes, writeNodes } from "./nodes.ts";
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
    const unit = `cdn-${region}`;
    const st = await currentStatus(ctx);
    const old = st.services.find((s) => s.name === unit && s.pid !== null);
    if (old)
      throw new AmiError(
        "AMI_INVALID_INPUT",
        `region ${region} already has a node at ${old.url} (cdn remove --region ${region} first)`,
      );
    const host = ctx.config.cdn.host;
    // A fixed port: a restarted node must come back at the URL its clients and children know.
    const node: DeployedNode = {
      region,
      url: baseUrl("http", host, port || (await freePort(host))),
      pid: null,
      origin: origin ?? ctx.config.cdn.origin ?? "media",
      parents: parents.length ? parents : ctx.config.cdn.parents,
      startedAt: Date.now(),
      kind: "deployed",
      signingSecret: signingSecret ?? (signed ? randomBytes(32).toString("base64url") : ctx.config.cdn.signingSecret),
    };
    const others = readNodes(ctx.paths).filter((n) => n.region !== region);
    writeNodes(ctx.paths, [...others, node]);
    try {
      // Supervised like every service: restarted with backoff after a crash, in `status` and the monitor.
      const { client, spawned } = await ensureSupervisor(ctx, [unit]);
      if (!spawned) await client.request("POST", `/api/services/${unit}/start`);
      const now = await waitHealthy(client, [unit], ctx);
      node.pid = now.services.find((s) => s.name === unit)?.pid ?? null;
    } catch (e) {
      await stopUnit(ctx, region).catch(() => {});
      writeNodes(ctx.paths, others);
      throw new AmiError(
        "AMI_UNAVAILABLE",
        `edge node ${region} did not start (log ${ctx.paths.logFile(unit)}): ${(e as Error).message}`,
      );
    }
    return view(node);
  },
});

/** A free TCP port on `host` now (the node binds it right after; a race with another binder is an error then). */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, host, () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** Stops a deployed node: through the supervisor when one runs, and any process of it left for this home. */
async function stopUnit(ctx: OpContext, region: string): Promise<boolean> {
  const unit = `cdn-${region}`;
  let stopped = false;
  const client = connectControl(ctx.config, ctx.paths);
  if (client) {
    const st = await client.request<SupervisorStatus>("GET", "/api/status");
    if (st.services.some((s) => s.name === unit && s.pid !== null)) {
      await client.request("POST", `/api/services/${unit}/stop`);
      stopped = true;
    }
  }
  const marks = ["serve", "cdn", "--instance", region];
  for (const p of homeProcesses(ctx.paths.home).filter((x) => hasMarkers(x.argv, marks))) {
    process.kill(p.pid, "SIGTERM");
    stopped = true;
    for (let i = 0; i < 100 && isOurProcess(p.pid, marks); i++) await new Promise((r) => setTimeout(r, 50));
  }
  return stopped;
}

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
    // Pids from the supervisor (deployed nodes are its units; a restart changes the pid).
    const units = (await currentStatus(ctx).catch(() => null))?.services ?? [];
    const pidOf = (n: DeployedNode) =>
      units.find((u) => u.name === (n.kind === "service" ? "cdn" : `cdn-${n.region}`))?.pid ?? n.pid;
    return { nodes: await Promise.all(allNodes(ctx).map((n) => view({ ...n, pid: pidOf(n) }))) };
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
    if (!nodes.some((x) => x.region === region))
      throw new AmiError("AMI_INVALID_INPUT", `no deployed edge node for region ${region} (cdn list)`);
    const stopped = await stopUnit(ctx, region);
    writeNodes(
      ctx.paths,
      nodes.filter((x) => x.region !== region),
    );
    return { region, stopped };
  },
});

export const cdnOps = [cdnDeployOp, cdnListOp, cdnStatsOp, cdnPurgeOp, cdnRemoveOp, cdnSignOp];
