/**
 * CDN edge nodes per region: the `cdn` service (one edge node from the `cdn` section) and `cdn deploy|list|status|
 * stats|purge|remove` for more nodes (regions, shields) on their own ports.
 */
import { defineFeature, type Feature } from "../core/feature.ts";
import { cdnSchema } from "./config.ts";
import { cdnService } from "./service.ts";

// Annotated: the config type is derived from this list, and ops refer to the config type.
export const cdnFeature: Feature<"cdn", typeof cdnSchema> = defineFeature({
  name: "cdn",
  summary: "CDN edge nodes per region: caching reverse proxy, coalescing, purge by tag, shields",
  config: cdnSchema,
  configExample: new URL("./config.example.yaml", import.meta.url),
  services: [cdnService],
  ops: async () => (await import("./ops.ts")).cdnOps,
});
