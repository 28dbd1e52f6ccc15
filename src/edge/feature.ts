/**
 * Edge functions: Workers-compatible ES modules run by workerd, one process per function under the `edge` service,
 * CPU and memory limits enforced from outside, versioned deploys (code in the CAS), KV on the CAS and an ORIGIN
 * binding, no other network and no host files. `ami-streams edge deploy|list|logs|rollback|delete`.
 */
import { defineFeature, type Feature } from "../core/feature.ts";
import { edgeSchema } from "./config.ts";
import { edgeService } from "./service.ts";

const edgeErrors = {
  /** workerd refused the module (it does not parse, or imports what is not there). */
  AMI_EDGE_BAD_MODULE: 400,
  AMI_EDGE_CPU_LIMIT: 503,
  AMI_EDGE_MEMORY_LIMIT: 503,
} as const;
type EdgeErrors = typeof edgeErrors;
declare module "../core/errors.ts" {
  interface FeatureErrorCodes extends EdgeErrors {}
}

// Annotated: the config type is derived from this list, and ops refer to the config type.
export const edgeFeature: Feature<"edge", typeof edgeSchema> = defineFeature({
  name: "edge",
  summary: "Serverless edge functions on workerd: versioned deploys, KV on the CAS, CPU/memory limits",
  config: edgeSchema,
  configExample: new URL("./config.example.yaml", import.meta.url),
  services: [edgeService],
  errors: edgeErrors,
  ops: async () => (await import("./ops.ts")).edgeOps,
});
