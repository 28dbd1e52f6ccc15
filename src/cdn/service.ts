/**
 * The `cdn` service: one edge node. The config's node takes the `cdn` section as is; each node `cdn deploy` adds
 * is an instance of the same service (`serve cdn --instance <region>`, unit `cdn-<region>`), supervised like any
 * service (restarted with backoff, in `status` and the monitor), its overrides (port, origin, parents, signing
 * secret) read from <home>/run/cdn/nodes.json.
 */
import { join } from "node:path";
import type { Config } from "../config.ts";
import { AmiError } from "../core/errors.ts";
import { baseUrl } from "../core/http/address.ts";
import { runtimePaths } from "../core/paths.ts";
import type { ServiceDef } from "../core/service.ts";
import { type CdnConfig, cdnSchema } from "./config.ts";
import type { DiskTier } from "./disk.ts";
import { type DeployedNode, readNodes } from "./nodes.ts";

/** The config of a deployed node: the `cdn` section with the node's overrides. */
export function nodeConfig(config: Config, n: DeployedNode): CdnConfig {
  return cdnSchema.parse({
    ...config.cdn,
    region: n.region,
    port: Number(new URL(n.url).port),
    origin: n.origin === "media" ? null : n.origin,
    parents: n.parents,
    signingSecret: n.signingSecret ?? config.cdn.signingSecret,
  });
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
  instances: (_c, home) =>
    readNodes(runtimePaths(home))
      .filter((n) => n.kind === "deployed")
      .map((n) => ({
        id: n.region,
        summary: `CDN edge node ${n.region} → ${[...n.parents, n.origin].join(" → ")}`,
        baseUrl: n.url,
        enabled: true,
      })),
  async start(config, { log, paths, instance }) {
    const { EdgeNode } = await import("./node.ts");
    let c = config.cdn;
    if (instance !== undefined) {
      const n = readNodes(paths).find((x) => x.region === instance && x.kind === "deployed");
      if (!n) throw new AmiError("AMI_INVALID_INPUT", `no deployed edge node for region ${instance} (cdn list)`);
      c = nodeConfig(config, n);
    }
    let disk: DiskTier | undefined;
    if (c.diskBytes > 0) {
      const { DiskTier } = await import("./disk.ts");
      const { openStoreAt } = await import("../cas/open.ts");
      disk = new DiskTier({
        store: openStoreAt(config.cas.root ?? join(paths.data, "cas"), config.cas),
        indexFile: join(paths.serviceData(`cdn-${c.region}`), "disk-index.json"),
        maxBytes: c.diskBytes,
        hold: `cdn:${c.region}`,
        log,
      });
    }
    const node = new EdgeNode({ config: c, origin: originOf(c, config), log, disk });
    const url = await node.start();
    return { url, close: () => node.close() };
  },
};
