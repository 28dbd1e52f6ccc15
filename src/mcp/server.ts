/**
 * One MCP server factory, fed by the op registry, for every transport. Each non-cliOnly op is a tool named
 * `toolName(op.name)` with its input/output JSON Schemas and annotations; errors become isError results.
 */
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import {
  CallToolRequestSchema,
  type CallToolResult,
  ListToolsRequestSchema,
  type Tool,
} from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import type { Config } from "../config.ts";
import { makeContext } from "../control/context.ts";
import { invokeOp } from "../control/invoke.ts";
import { toAmiError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import { type OpDef, type OpRegistry, toolName } from "../core/ops.ts";

export interface McpDeps {
  registry: OpRegistry;
  config: Config;
  configPath: string | undefined;
  log: Logger;
  version: string;
}

type JsonSchema = Record<string, unknown>;

function jsonSchema(s: z.ZodType, io: "input" | "output"): JsonSchema {
  const { $schema: _drop, ...rest } = z.toJSONSchema(s, { io, unrepresentable: "any" }) as JsonSchema;
  return rest;
}

/** MCP structured content must be an object: non-object outputs are wrapped as `{ result }`. */
const objectOutput = (op: OpDef) => jsonSchema(op.output, "output").type === "object";

export function toolFor(op: OpDef): Tool {
  const out = jsonSchema(op.output, "output");
  return {
    name: toolName(op.name),
    title: op.summary,
    description: op.description ? `${op.summary}\n\n${op.description}` : op.summary,
    inputSchema: jsonSchema(op.input, "input") as Tool["inputSchema"],
    outputSchema: (out.type === "object"
      ? out
      : { type: "object", properties: { result: out }, required: ["result"] }) as Tool["outputSchema"],
    annotations: {
      title: op.summary,
      readOnlyHint: op.annotations.readOnly,
      destructiveHint: op.annotations.destructive,
      idempotentHint: op.annotations.idempotent,
      openWorldHint: op.annotations.openWorld ?? false,
    },
  };
}

export function createMcpServer(d: McpDeps): Server {
  const ops = d.registry.list().filter((o) => !o.cliOnly);
  const byTool = new Map(ops.map((o) => [toolName(o.name), o]));
  const tools = ops.map(toolFor);
  const server = new Server({ name: "ami-streams", version: d.version }, { capabilities: { tools: {} } });

  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools }));

  server.setRequestHandler(CallToolRequestSchema, async (req, extra): Promise<CallToolResult> => {
    const op = byTool.get(req.params.name);
    if (!op) return errorResult("M_NOT_FOUND", `unknown tool '${req.params.name}'`);
    const token = req.params._meta?.progressToken;
    const log = d.log.child({ tool: req.params.name });
    const ctx = makeContext({
      config: d.config,
      configPath: d.configPath,
      log,
      signal: extra.signal,
      progress:
        token === undefined
          ? undefined
          : (progress, total, message) =>
              void extra
                .sendNotification({
                  method: "notifications/progress",
                  params: { progressToken: token, progress, total, message },
                })
                .catch(() => {}),
    });
    try {
      const out = await invokeOp(op, req.params.arguments ?? {}, ctx);
      const structured = (objectOutput(op) ? out : { result: out ?? null }) as Record<string, unknown>;
      return { content: [{ type: "text", text: JSON.stringify(out ?? null) }], structuredContent: structured };
    } catch (e) {
      const err = toAmiError(e);
      if (err.code === "M_UNKNOWN") log.error("tool failed", { error: String((e as Error)?.stack ?? e) });
      return errorResult(err.code, err.message, err.extra);
    }
  });
  return server;
}

function errorResult(code: string, message: string, extra: Record<string, unknown> = {}): CallToolResult {
  return {
    isError: true,
    content: [{ type: "text", text: JSON.stringify({ errcode: code, error: message, ...extra }) }],
  };
}
