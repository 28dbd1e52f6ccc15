/**
 * `ami-streams matrix federation keys|resolve|status|destinations|retry` (MCP: matrix_federation_*): this server's
 * signing keys as other servers see them, where server discovery finds another server (both work without the
 * service running), and the outgoing transaction queues of the running service (admin API).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { defineOp, type OpContext } from "../../core/ops.ts";
import { parseSigningKeyFile } from "../events/signing.ts";
import { Discovery } from "../federation/discovery.ts";
import { asService } from "./client.ts";

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

const destination = z.object({
  destination: z.string(),
  queuedPdus: z.number(),
  queuedEdus: z.number(),
  inFlight: z.boolean(),
  lastSuccessTs: z.number().nullable(),
  failures: z.number(),
  backoffUntil: z.number().nullable(),
  dropped: z.number(),
});
type Destination = z.infer<typeof destination>;

/** The running homeserver's destinations (admin API, as the service account). */
async function destinations(ctx: OpContext): Promise<Destination[]> {
  const r = await asService<{
    destinations: {
      destination: string;
      queued_pdus?: number;
      queued_edus?: number;
      in_flight?: boolean;
      last_success_ts?: number | null;
      failures?: number;
      backoff_until?: number | null;
      dropped?: number;
    }[];
  }>(ctx, "GET", "/_synapse/admin/v1/federation/destinations");
  return r.destinations.map((d) => ({
    destination: d.destination,
    queuedPdus: d.queued_pdus ?? 0,
    queuedEdus: d.queued_edus ?? 0,
    inFlight: !!d.in_flight,
    lastSuccessTs: d.last_success_ts ?? null,
    failures: d.failures ?? 0,
    backoffUntil: d.backoff_until ?? null,
    dropped: d.dropped ?? 0,
  }));
}

const when = (ts: number | null) => (ts === null ? "never" : new Date(ts).toISOString());

export const federationStatus = defineOp({
  name: "matrix.federation.status",
  summary: "Show whether federation is on, this server's name and key, and the outgoing queues in total",
  input: z.object({}),
  output: z.object({
    enabled: z.boolean(),
    serverName: z.string(),
    keyId: z.string().nullable(),
    destinations: z.number(),
    backingOff: z.number(),
    queuedPdus: z.number(),
    queuedEdus: z.number(),
  }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  human: (o) =>
    [
      `${o.serverName}  federation ${o.enabled ? "enabled" : "disabled (isolated)"}  key ${o.keyId ?? "-"}`,
      `${o.destinations} destination(s), ${o.backingOff} backing off; queued: ${o.queuedPdus} PDU(s), ${o.queuedEdus} EDU(s)`,
    ].join("\n"),
  async run(_i, ctx) {
    const m = ctx.config.matrix;
    const path = join(ctx.paths.serviceData("matrix"), "signing.key");
    const keyId = existsSync(path) ? parseSigningKeyFile(readFileSync(path, "utf8")).keyId : null;
    const all = await destinations(ctx);
    const now = Date.now();
    return {
      enabled: m.federation.enabled,
      serverName: m.serverName,
      keyId,
      destinations: all.length,
      backingOff: all.filter((d) => d.backoffUntil !== null && d.backoffUntil > now).length,
      queuedPdus: all.reduce((n, d) => n + d.queuedPdus, 0),
      queuedEdus: all.reduce((n, d) => n + d.queuedEdus, 0),
    };
  },
});

export const federationDestinations = defineOp({
  name: "matrix.federation.destinations",
  summary: "List the servers this homeserver sends to: queue depth, last success, failures, backoff",
  input: z.object({}),
  output: z.object({ destinations: z.array(destination) }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  human: (o) =>
    o.destinations.length === 0
      ? "no destinations"
      : o.destinations
          .map(
            (d) =>
              `${d.destination}  queued ${d.queuedPdus} PDU(s) ${d.queuedEdus} EDU(s)${d.inFlight ? " (sending)" : ""}  ` +
              `last success ${when(d.lastSuccessTs)}  failures ${d.failures}` +
              (d.backoffUntil !== null ? `  backoff until ${when(d.backoffUntil)}` : "") +
              (d.dropped ? `  dropped ${d.dropped}` : ""),
          )
          .join("\n"),
  async run(_i, ctx) {
    return { destinations: await destinations(ctx) };
  },
});

export const federationRetry = defineOp({
  name: "matrix.federation.retry",
  summary: "Forget a destination's backoff and send its queue now (after fixing the other server)",
  input: z.object({ server: z.string().describe("destination server name, e.g. example.org") }),
  output: z.object({ server: z.string(), wasBackingOff: z.boolean() }),
  annotations: { readOnly: false, destructive: false, idempotent: true, openWorld: true },
  positional: ["server"],
  human: (o) => `${o.server}: ${o.wasBackingOff ? "backoff reset, queue woken" : "was not backing off; queue woken"}`,
  async run(i, ctx) {
    const r = await asService<{ was_backing_off: boolean }>(
      ctx,
      "POST",
      `/_synapse/admin/v1/federation/destinations/${encodeURIComponent(i.server)}/reset_connection`,
      {},
    );
    return { server: i.server, wasBackingOff: r.was_backing_off };
  },
});
