/** The web chat client for people (service `web`). */
import { defineFeature, type Feature } from "../core/feature.ts";
import { webSchema } from "./config.ts";
import { webService } from "./service.ts";

// Annotated: the config type is derived from this list, and ops refer to the config type.
export const webFeature: Feature<"web", typeof webSchema> = defineFeature({
  name: "web",
  summary: "Web chat client (web/chat) served next to the homeserver",
  config: webSchema,
  configExample: new URL("./config.example.yaml", import.meta.url),
  services: [webService],
});
