/** Collects every operation into one registry: the CLI, the MCP server and the control API are generated from it. */

import { casOps } from "../cas/ops.ts";
import type { Config } from "../core/config.ts";
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
import { peekConfig, units } from "./units.ts";

/** `config` decides which external programs get `<name> start|stop|...` ops (default: the config file in effect). */
export function buildRegistry(config: Config = peekConfig()): OpRegistry {
  const all = units(config);
  const registry = new OpRegistry().add(
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
    ...all.filter((u) => u.kind === "service").flatMap(serviceOps),
    ...matrixOps,
    ...mediaOps,
    ...casOps,
  );
  // A program named like a command that exists is still supervised (up, down, status); it just gets no second one.
  for (const op of all.filter((u) => u.kind === "program").flatMap(serviceOps)) {
    if (!registry.get(op.name)) registry.add(op);
  }
  return registry;
}
