/** P2P distribution (Kademlia DHT, swarming, WebRTC mesh): planned (its ops answer AMI_NOT_BUILT). */
import { z } from "zod";
import { defineFeature, type Feature, plannedOp } from "../core/feature.ts";

// Annotated: the config type is derived from this list, and ops refer to the config type.
export const p2pFeature: Feature<"p2p", undefined> = defineFeature({
  name: "p2p",
  summary: "P2P distribution: DHT, swarming, WebRTC mesh (planned)",
  status: "planned",
  ops: async () => [
    plannedOp({
      name: "p2p.start",
      summary: "Start a P2P network node",
      what: "P2P network node (p2p.start)",
      input: z.object({ bootstrap: z.boolean().default(false).describe("act as a bootstrap node") }),
    }),
  ],
});
