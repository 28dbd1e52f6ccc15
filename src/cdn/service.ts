/**
 * The `cdn` service: one edge node. The supervised one takes the `cdn` section as is; nodes started by
 * `cdn deploy` run the same service with `AMI_CDN_NODE` (JSON: region, port, origin, parents) over it, and write
 * their bound URL to <home>/run/cdn/<region>.json once listening.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config.ts";
import { baseUrl } from "../core/http/address.ts";
import type { ServiceDef } from "../core/service.ts";
import { type CdnConfig, cdnSchema } from "./config.ts";
import { nodesDir } from "./nodes.ts";

export const NODE_ENV = "AMI_CDN_NODE";

/** The config of this process's node: the `cdn` section with a deployed node's overrides. */
export function nodeConfig(config: Config, env: NodeJS.ProcessEnv = process.env): CdnConfig {
  const raw = env[NODE_ENV];
  if (!raw) return config.cdn;
  return cdnSchema.parse({ ...config.cdn, ...JSON.parse(raw) });
}

/** The origin a node uses: its own, or this machine's media service. */
export function originOf(c: CdnConfig, config: Config): string {
  return (
    c.origin ??
    baseUrl("http", config.media.host === "0.0.0.0" ? "127.0.0.1" : config.media.host, config.media.httpPort)
  );
}

export const cdnService: ServiceDef = {
  name: "cdn",
  summary: "CDN edge node: caching reverse proxy (RFC 9111, coalescing, stale-if-error, purge by tag, W-TinyLFU)",
  enabled: (c) => c.cdn.enabled,
  baseUrl: (c) => baseUrl("http", c.cdn.host, c.cdn.port),
  describe: (c) => [
    `cdn: edge node (region ${c.cdn.region}) at ${baseUrl("http", c.cdn.host, c.cdn.port)} → ${originOf(c.cdn, c)}`,
    "  more regions: ami-streams cdn deploy --region eu-west-1 --port 8091; purge: ami-streams cdn purge --tag T",
  ],
  async start(config, { log, paths }) {
    const { EdgeNode } = await import("./node.ts");
    const c = nodeConfig(config);
    const node = new EdgeNode({ config: c, origin: originOf(c, config), log });
    const url = await node.start();
    if (process.env[NODE_ENV]) writeFileSync(join(nodesDir(paths), `${c.region}.url`), url);
    return { url, close: () => node.close() };
  },
};
