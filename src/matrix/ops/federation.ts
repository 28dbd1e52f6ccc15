/**
 * `ami-streams matrix federation keys|resolve` (MCP: matrix_federation_*): this server's signing keys as other
 * servers see them, and where server discovery finds another server. Both work without the service running.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { defineOp } from "../../core/ops.ts";
import { parseSigningKeyFile } from "../events/signing.ts";
import { Discovery } from "../federation/discovery.ts";

export const federationKeys = defineOp({
  name: "matrix.federation.keys",
  summary: "Show this homeserver's federation signing keys (current and old) and whether federation is on",
  input: z.object({}),
  output: z.object({
    serverName: z.string(),
    federationEnabled: z.boolean(),
    verifyKeys: z.record(z.string(), z.object({ key: z.string() })),
    oldVerifyKeys: z.record(z.string(), z.object({ key: z.string(), expired_ts: z.number() })),
  }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  human: (o) =>
    [
      `${o.serverName}  federation ${o.federationEnabled ? "enabled" : "disabled (isolated)"}`,
      ...Object.entries(o.verifyKeys).map(([id, k]) => `${id}  ${k.key}  (current)`),
      ...Object.entries(o.oldVerifyKeys).map(
        ([id, k]) => `${id}  ${k.key}  (expired ${new Date(k.expired_ts).toISOString()})`,
      ),
    ].join("\n"),
  async run(_i, ctx) {
    const m = ctx.config.matrix;
    // The key the homeserver made on its first start (Synapse's signing.key format).
    const path = join(ctx.paths.serviceData("matrix"), "signing.key");
    if (!existsSync(path))
      throw new AmiError(
        "AMI_NOT_RUNNING",
        "no signing key yet: start the homeserver once (`ami-streams matrix start`)",
      );
    const key = parseSigningKeyFile(readFileSync(path, "utf8"));
    return {
      serverName: m.serverName,
      federationEnabled: m.federation.enabled,
      verifyKeys: { [key.keyId]: { key: key.publicKeyBase64 } },
      oldVerifyKeys: m.federation.oldVerifyKeys,
    };
  },
});

export const federationResolve = defineOp({
  name: "matrix.federation.resolve",
  summary: "Resolve a server name as federation does (host map, IP, port, well-known, SRV, 8448)",
  input: z.object({ server: z.string().describe("server name, e.g. matrix.org or example.org:8448") }),
  output: z.object({
    serverName: z.string(),
    host: z.string(),
    port: z.number(),
    tls: z.boolean(),
    hostHeader: z.string(),
    via: z.string(),
  }),
  annotations: { readOnly: true, destructive: false, idempotent: true, openWorld: true },
  positional: ["server"],
  human: (o) =>
    `${o.serverName} -> ${o.tls ? "https" : "http"}://${o.host.includes(":") ? `[${o.host}]` : o.host}:${o.port}  Host: ${o.hostHeader}  (via ${o.via})`,
  async run(i, ctx) {
    // Asked for explicitly, so the lookups happen even while the homeserver runs isolated.
    return new Discovery({ ...ctx.config.matrix.federation, enabled: true }).resolve(i.server);
  },
});
