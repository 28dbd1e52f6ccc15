/** Collects every operation into one registry: the CLI, the MCP server and the control API are generated from it. */
import { casOps } from "../cas/ops.ts";
import { OpRegistry } from "../core/ops.ts";
import { matrixOps } from "../matrix/ops/index.ts";
import { mcpOp } from "../mcp/op.ts";
import { mediaOps } from "../media/ops/index.ts";
import { monitorOp } from "../monitor/op.ts";
import { configOps } from "./ops/config.ts";
import { internalOps } from "./ops/internal.ts";
import { downOp, statusOp, upOp } from "./ops/lifecycle.ts";
import { logsOp } from "./ops/logs.ts";
import { notBuiltOps } from "./ops/not-built.ts";
import { serviceOps } from "./ops/service-ops.ts";
import { testOp } from "./ops/test.ts";
import { versionOp } from "./ops/version.ts";
import { services } from "./services.ts";

export function buildRegistry(): OpRegistry {
  return new OpRegistry().add(
    upOp,
    downOp,
    statusOp,
    logsOp,
    versionOp,
    testOp,
    mcpOp,
    monitorOp,
    ...configOps,
    ...internalOps,
    ...notBuiltOps,
    ...services.flatMap(serviceOps),
    ...matrixOps,
    ...mediaOps,
    ...casOps,
  );
}
