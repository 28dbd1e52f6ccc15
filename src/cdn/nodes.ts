/**
 * Deployed edge nodes of this runtime home: <home>/run/cdn/nodes.json (region, url, pid, origin, parents), kept by
 * `cdn deploy` / `cdn remove`. The supervised `cdn` service (the config's node) is listed with them when enabled.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { baseUrl } from "../core/http/address.ts";
import type { OpContext } from "../core/ops.ts";
import type { RuntimePaths } from "../core/paths.ts";

export interface DeployedNode {
  region: string;
  url: string;
  pid: number | null;
  origin: string;
  parents: string[];
  startedAt: number;
  /** "deployed": a `cdn deploy` process; "service": the supervised `cdn` service. */
  kind: "deployed" | "service";
  /** Signed URLs: the secret of this node's origin (the file is 0600), absent: none asked. */
  signingSecret?: string | null;
}

export function nodesDir(paths: RuntimePaths): string {
  const d = join(paths.run, "cdn");
  mkdirSync(d, { recursive: true, mode: 0o700 });
  return d;
}

export function readNodes(paths: RuntimePaths): DeployedNode[] {
  try {
    // No directory made here: units() reads this for every command.
    return JSON.parse(readFileSync(join(paths.home, "run", "cdn", "nodes.json"), "utf8")) as DeployedNode[];
  } catch {
    return [];
  }
}

export function writeNodes(paths: RuntimePaths, nodes: DeployedNode[]): void {
  const f = join(nodesDir(paths), "nodes.json");
  writeFileSync(`${f}.tmp`, JSON.stringify(nodes, null, 2), { mode: 0o600 });
  renameSync(`${f}.tmp`, f);
}

/** The deployed nodes plus the supervised `cdn` service's node when it is enabled. */
export function allNodes(ctx: OpContext): DeployedNode[] {
  const nodes = readNodes(ctx.paths);
  const c = ctx.config.cdn;
  if (c.enabled && !nodes.some((n) => n.region === c.region))
    nodes.unshift({
      region: c.region,
      url: baseUrl("http", c.host, c.port),
      pid: null,
      origin: c.origin ?? "media",
      parents: c.parents,
      startedAt: 0,
      kind: "service",
      signingSecret: c.signingSecret,
    });
  return nodes;
}
