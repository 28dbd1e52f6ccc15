/**
 * Deploying: a production Docker Compose project (`ami-streams deploy compose`: the homeserver (ours or Synapse),
 * PostgreSQL, Redis, coturn, Element Web, Caddy) and systemd units for a bare-metal host (`deploy systemd`).
 * Generators only: no service, no config section.
 */
import { defineFeature, type Feature } from "../core/feature.ts";

// Annotated: the config type is derived from the features list, and these ops read the config.
export const deployFeature: Feature<"deploy", undefined> = defineFeature({
  name: "deploy",
  summary: "Production deploys: a Docker Compose stack (ours or Synapse + Element + PostgreSQL + Redis), systemd units",
  ops: async () => (await import("./ops.ts")).deployOps,
});
