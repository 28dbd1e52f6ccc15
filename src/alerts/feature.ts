/** Built-in alerts evaluated by the supervisor, delivered to a Matrix room and a webhook; `alerts list|ack`. */
import { defineFeature, type Feature } from "../core/feature.ts";
import { alertsSchema } from "./config.ts";

// Annotated: the config type is derived from this list, and ops refer to the config type.
export const alertsFeature: Feature<"alerts", typeof alertsSchema> = defineFeature({
  name: "alerts",
  summary: "Built-in alerts (service down, restart loop, disk, streams, error rate, backups) to Matrix and a webhook",
  config: alertsSchema,
  configExample: new URL("./config.example.yaml", import.meta.url),
  ops: async () => (await import("./ops.ts")).alertsOps,
});
