/** The supervisor and the control surfaces: up/down/status/logs, config, the control API, the MCP server. */
import { defineFeature, type Feature } from "../core/feature.ts";
import { controlSchema } from "./config.ts";

// Annotated: the config type is derived from this list, and ops refer to the config type.
export const controlFeature: Feature<"control", typeof controlSchema> = defineFeature({
  name: "control",
  summary: "Supervisor, control API, config, logs, MCP server",
  config: controlSchema,
  configExample: new URL("./config.example.yaml", import.meta.url),
  commands: ["up", "down", "status", "logs", "version", "test", "mcp", "config", "serve", "supervise"],
  ops: async () => {
    const [config, internal, lifecycle, logs, test, version, mcp] = await Promise.all([
      import("./ops/config.ts"),
      import("./ops/internal.ts"),
      import("./ops/lifecycle.ts"),
      import("./ops/logs.ts"),
      import("./ops/test.ts"),
      import("./ops/version.ts"),
      import("../mcp/op.ts"),
    ]);
    return [
      lifecycle.upOp,
      lifecycle.downOp,
      lifecycle.statusOp,
      logs.logsOp,
      version.versionOp,
      test.testOp,
      mcp.mcpOp,
      ...config.configOps,
      ...internal.internalOps,
    ];
  },
});
