/** `ami-streams monitor`: a live view of every supervised unit (its figures come from the units' stats URLs). */
import { defineFeature, type Feature } from "../core/feature.ts";

// Annotated: the config type is derived from this list, and ops refer to the config type.
export const monitorFeature: Feature<"monitor", undefined> = defineFeature({
  name: "monitor",
  summary: "Live monitor of every service and program",
  ops: async () => [(await import("./op.ts")).monitorOp],
});
