/**
 * P2P distribution: the `p2p` service (a BitTorrent node: v1/v2/hybrid torrents, magnets, PEX, pieces in the
 * CAS, a built-in tracker) and `p2p publish|fetch|ls|peers|pin|unpin`. The DHT plugs in as a discovery source
 * (service.ts `p2pSources`).
 */
import { defineFeature, type Feature } from "../core/feature.ts";
import { p2pSchema } from "./config.ts";
import { p2pService } from "./service.ts";

// Annotated: the config type is derived from this list, and ops refer to the config type.
export const p2pFeature: Feature<"p2p", typeof p2pSchema> = defineFeature({
  name: "p2p",
  summary: "P2P distribution: BitTorrent swarming with pieces in the CAS, magnets, built-in tracker",
  config: p2pSchema,
  configExample: new URL("./config.example.yaml", import.meta.url),
  services: [p2pService],
  ops: async () => (await import("./ops.ts")).p2pOps,
});
