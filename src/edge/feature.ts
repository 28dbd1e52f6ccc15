/** Serverless functions on edge nodes: planned (its ops answer AMI_NOT_BUILT). */
import { z } from "zod";
import { defineFeature, type Feature, plannedOp } from "../core/feature.ts";

// Annotated: the config type is derived from this list, and ops refer to the config type.
export const edgeFeature: Feature<"edge", undefined> = defineFeature({
  name: "edge",
  summary: "Serverless edge functions (planned)",
  status: "planned",
  ops: async () => [
    plannedOp({
      name: "edge.deploy",
      summary: "Deploy a function to the edge runtime",
      what: "edge function deployment (edge.deploy)",
      input: z.object({ function: z.string().optional().describe("function name") }),
    }),
  ],
});
