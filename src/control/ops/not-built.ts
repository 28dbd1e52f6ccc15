/**
 * Capabilities the seed promises but that are not built yet. They exist so the shell functions and MCP
 * tools have a real target, and they fail loudly (AMI_NOT_BUILT, CLI exit 4) instead of pretending.
 */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { defineOp } from "../../core/ops.ts";

const notBuilt = (what: string) => {
  throw new AmiError(
    "AMI_NOT_BUILT",
    `${what}: not built yet (planned in the seed's "Future Development"; no implementation exists in this version)`,
  );
};
const none = z.object({});
const effect = { readOnly: false, destructive: false, idempotent: false, openWorld: true };

export const notBuiltOps = [
  defineOp({
    name: "cdn.deploy",
    summary: "Deploy a CDN edge node (NOT BUILT YET)",
    input: z.object({ region: z.string().optional().describe("region, e.g. us-east-1") }).strict(),
    output: none,
    annotations: effect,
    run: async () => notBuilt("CDN edge deployment (cdn.deploy)"),
  }),
  defineOp({
    name: "p2p.start",
    summary: "Start a P2P network node (NOT BUILT YET)",
    input: z.object({ bootstrap: z.boolean().default(false).describe("act as a bootstrap node") }).strict(),
    output: none,
    annotations: effect,
    run: async () => notBuilt("P2P network node (p2p.start)"),
  }),
  defineOp({
    name: "edge.deploy",
    summary: "Deploy a function to the edge runtime (NOT BUILT YET)",
    input: z.object({ function: z.string().optional().describe("function name") }).strict(),
    output: none,
    annotations: effect,
    run: async () => notBuilt("edge function deployment (edge.deploy)"),
  }),
];
