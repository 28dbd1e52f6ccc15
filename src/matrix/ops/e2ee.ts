/**
 * The service account's end-to-end encrypted device for the ops (`room send --encrypted`): an agent-SDK
 * device whose session and crypto store live in <home>/data/matrix-ops-crypto/, so every CLI/MCP call is the
 * same device with the same keys and Megolm sessions, never a new device for other members to see.
 */
import { join } from "node:path";
import type { OpContext } from "../../core/ops.ts";
import type { Agent } from "../../sdk/agent.ts";
import { homeserverUrl, servicePassword, serviceUserId } from "./client.ts";

export const opsCryptoDir = (ctx: OpContext): string => join(ctx.paths.data, "matrix-ops-crypto");

/** Run `fn` with the service account's E2EE agent, stopped (and its store written) afterwards. */
export async function withServiceAgent<T>(ctx: OpContext, fn: (agent: Agent) => Promise<T>): Promise<T> {
  const userId = await serviceUserId(ctx); // registers the account on first use
  // Loaded on demand: matrix-js-sdk and the crypto WASM are heavy for every other CLI command.
  const { createAgent } = await import("../../sdk/agent.ts");
  const agent = await createAgent({
    homeserverUrl: homeserverUrl(ctx),
    userId,
    password: servicePassword(ctx),
    deviceName: "ami-streams CLI/MCP (encrypted)",
    storeDir: opsCryptoDir(ctx),
    log: ctx.log,
  });
  try {
    return await fn(agent);
  } finally {
    await agent.stop();
  }
}
