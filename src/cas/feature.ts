/** The content-addressed store: `cas ...` ops (in the calling process; no service) and its config section. */
import { defineFeature, type Feature } from "../core/feature.ts";
import { casSchema } from "./config.ts";

const casErrors = {
  /** Stored bytes that no longer match their hash. */
  AMI_CORRUPT: 500,
} as const;
type CasErrors = typeof casErrors;
declare module "../core/errors.ts" {
  interface FeatureErrorCodes extends CasErrors {}
}

// Annotated: the config type is derived from this list, and ops refer to the config type.
export const casFeature: Feature<"cas", typeof casSchema> = defineFeature({
  name: "cas",
  summary: "Content-addressed store: chunked, deduplicated, verified blobs with pins and GC",
  config: casSchema,
  configExample: new URL("./config.example.yaml", import.meta.url),
  errors: casErrors,
  ops: async () => (await import("./ops.ts")).casOps,
});
