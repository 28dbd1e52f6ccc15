/**
 * Deployed edge nodes of this runtime home: <home>/run/cdn/nodes.json (region, url, pid, origin, parents), kept by
 * `cdn deploy` / `cdn remove`. The supervised `cdn` service (the config's node) is listed with them when enabled.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
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
}

export function nodesDir(paths: RuntimePaths): string {
  const d = join(paths.run, "cdn");
  mkdirSync(d, { recursive: true, mode: 0o700 });
  return d;
}

export function readNodes(paths: RuntimePaths): DeployedNode[] {
  try {
    return JSON.parse(readFileSync(join(nodesDir(paths), "nodes.json"), "utf8")) as DeployedNode[];
  } catch {
    return [];
  }
}

export function writeNodes(paths: RuntimePaths, nodes: DeployedNode[]): void {
  const f = join(nodesDir(paths), "nodes.json");
  writeFileSync(`${f}.tmp`, JSON.stringify(nodes, null, 2), { mode: 0o600 });
  renameSync(`${f}.tmp`, f);
}
