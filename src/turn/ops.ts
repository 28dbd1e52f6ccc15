/** `ami-streams turn credentials` (MCP: turn_credentials): time-limited TURN credentials for a WebRTC client. */
import { z } from "zod";
import { AmiError } from "../core/errors.ts";
import { defineOp } from "../core/ops.ts";
import { turnSecret, turnUris } from "./coturn.ts";
import { turnCredentials } from "./credentials.ts";

export const turnCredentialsOp = defineOp({
  name: "turn.credentials",
  summary: "Time-limited TURN credentials (username, password, URIs) for a WebRTC client or agent",
  input: z
    .object({
      user: z.string().min(1).max(255).default("agent").describe("who they are for (part of the username)"),
      ttl: z
        .number()
        .int()
        .positive()
        .optional()
        .describe("seconds they stay valid (default: turn.credentialTtlSeconds)"),
    })
    .strict(),
  output: z.object({ username: z.string(), password: z.string(), uris: z.array(z.string()), ttl: z.number() }),
  annotations: { readOnly: true, destructive: false, idempotent: false },
  human: (o) => [`username ${o.username}`, `password ${o.password}`, ...o.uris.map((u) => `uri ${u}`)].join("\n"),
  async run({ user, ttl }, ctx) {
    if (!ctx.config.turn.enabled) throw new AmiError("AMI_UNAVAILABLE", "TURN is off (set turn.enabled: true)");
    return turnCredentials(
      turnSecret(ctx.config),
      user,
      ttl ?? ctx.config.turn.credentialTtlSeconds,
      turnUris(ctx.config),
    );
  },
});

export const turnOps = [turnCredentialsOp];
