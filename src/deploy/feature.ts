/**
 * Deploying: a production Docker Compose project (`ami-streams deploy compose`: the homeserver (ours or Synapse),
 * PostgreSQL, Redis, coturn, Element Web, Caddy) and systemd units for a bare-metal host (`deploy systemd`).
 * Generators only: no service, no config section.
 */
import { defineFeature } from "../core/feature.ts";

export const deployFeature = defineFeature({
  name: "deploy",
  summary: "Production deploys: a Docker Compose stack (ours or Synapse + Element + PostgreSQL + Redis), systemd units",
  ops: async () => (await import("./ops.ts")).deployOps,
});
