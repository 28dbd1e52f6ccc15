/** CDN edge nodes per region: planned (its ops answer AMI_NOT_BUILT). */
import { z } from "zod";
import { defineFeature, type Feature, plannedOp } from "../core/feature.ts";

// Annotated: the config type is derived from this list, and ops refer to the config type.
export const cdnFeature: Feature<"cdn", undefined> = defineFeature({
  name: "cdn",
  summary: "CDN edge nodes per region (planned)",
  status: "planned",
  ops: async () => [
    plannedOp({
      name: "cdn.deploy",
      summary: "Deploy a CDN edge node",
      what: "CDN edge deployment (cdn.deploy)",
      input: z.object({ region: z.string().optional().describe("region, e.g. us-east-1") }),
    }),
  ],
});
