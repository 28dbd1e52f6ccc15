/** `ami-streams cdn sign --path P [--region R] [--ttl S]` (MCP: cdn_sign): a signed, expiring URL for an edge node. */
import { z } from "zod";
import { AmiError } from "../core/errors.ts";
import { defineOp } from "../core/ops.ts";
import { allNodes } from "./nodes.ts";
import { signTarget } from "./sign.ts";

export const cdnSignOp = defineOp({
  name: "cdn.sign",
  summary: "Sign a path for an edge node: a URL valid until it expires (HMAC of path + expiry, per-origin secret)",
  input: z
    .object({
      path: z
        .string()
        .regex(/^\/[^?#\s]*$/, "must be a path starting with '/', without query or fragment")
        .describe("the path to sign, e.g. /live/cam1/index.m3u8"),
      region: z.string().optional().describe("the node whose secret signs (default: the `cdn` section's node)"),
      ttl: z
        .number()
        .int()
        .positive()
        .max(10 * 365 * 86400)
        .default(3600)
        .describe("seconds the link stays valid"),
    })
    .strict(),
  output: z.object({ url: z.string(), target: z.string(), expires: z.number(), region: z.string() }),
  annotations: { readOnly: true, destructive: false, idempotent: false, openWorld: false },
  human: (o) => `${o.url}\n(valid until ${new Date(o.expires * 1000).toISOString()})`,
  async run({ path, region, ttl }, ctx) {
    const nodes = allNodes(ctx);
    const r = region ?? ctx.config.cdn.region;
    const node = nodes.find((n) => n.region === r);
    const secret = node ? node.signingSecret : r === ctx.config.cdn.region ? ctx.config.cdn.signingSecret : null;
    if (!node && region) throw new AmiError("AMI_INVALID_INPUT", `no edge node for region ${region} (cdn list)`);
    if (!secret)
      throw new AmiError(
        "AMI_INVALID_INPUT",
        `the ${r} node has no signing secret (cdn.signingSecret, or cdn deploy --signed / --signing-secret)`,
      );
    const expires = Math.floor(Date.now() / 1000) + ttl;
    // Signed as the node will see it: the kit's parse (percent-encoding and dot segments normalised).
    const target = signTarget(secret, new URL(`http://x${path}`).pathname, expires);
    const base = node?.url ?? `http://${ctx.config.cdn.host}:${ctx.config.cdn.port}`;
    return { url: `${base}${target}`, target, expires, region: r };
  },
});
