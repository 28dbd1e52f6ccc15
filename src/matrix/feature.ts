/** Messaging: the Matrix homeserver (service `matrix`), its users/rooms ops and its config section. */
import { defineFeature, type Feature } from "../core/feature.ts";
import { matrixSchema } from "./config.ts";
import { matrixService } from "./matrix-service.ts";

// Annotated: the config type is derived from this list, and ops refer to the config type.
export const matrixFeature: Feature<"matrix", typeof matrixSchema> = defineFeature({
  name: "matrix",
  summary: "Matrix homeserver: client-server API, E2EE key APIs, media, admin API, WebSocket stream",
  config: matrixSchema,
  configExample: new URL("./config.example.yaml", import.meta.url),
  services: [matrixService],
  ops: async () => [
    ...(await import("./ops/index.ts")).matrixOps,
    ...(await import("../control/ops/config.ts")).matrixConfigOps,
  ],
});
