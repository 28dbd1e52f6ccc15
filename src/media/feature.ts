/** Live media (service `media`): ingest, HLS/LL-HLS/DASH/WHEP out, recording, restream; `stream ...` ops. */
import { defineFeature, type Feature } from "../core/feature.ts";
import { mediaSchema } from "./config.ts";
import { mediaService } from "./service.ts";

// Annotated: the config type is derived from this list, and ops refer to the config type.
export const mediaFeature: Feature<"media", typeof mediaSchema> = defineFeature({
  name: "media",
  summary: "Live media: RTMP/RTMPS/SRT/WHIP ingest, HLS, LL-HLS, DASH, WHEP, recording, restream",
  config: mediaSchema,
  configExample: new URL("./config.example.yaml", import.meta.url),
  services: [mediaService],
  commands: ["stream"],
  ops: async () => (await import("./ops/index.ts")).mediaOps,
});
