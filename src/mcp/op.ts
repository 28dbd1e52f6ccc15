/** `ami-streams mcp [--transport stdio|http]`: serve every op as an MCP tool. */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { repoRoot } from "../control/bin-path.ts";
import { defineOp } from "../core/ops.ts";

export const mcpOp = defineOp({
  name: "mcp",
  summary: "Run the MCP server (stdio by default; --transport http for streamable HTTP on 127.0.0.1)",
  description:
    "Every operation except CLI-only ones is a tool (matrix.room.send -> matrix_room_send). In stdio mode stdout " +
    "carries only protocol; logs go to stderr. In http mode the endpoint is http://127.0.0.1:<port>/mcp and needs " +
    "`Authorization: Bearer <token>`: --token, else $AMI_STREAMS_MCP_TOKEN, else one generated into <home>/run/mcp.token. " +
    "--feature media,cas serves just those features' tools (an agent's tool budget is limited; the seed plans one " +
    "MCP server per area).",
  input: z
    .object({
      transport: z.enum(["stdio", "http"]).default("stdio"),
      port: z.number().int().min(0).max(65535).default(8471).describe("http: port on 127.0.0.1 (0 = any free port)"),
      token: z.string().min(16).optional().describe("http: bearer token clients must send"),
      feature: z
        .string()
        .regex(/^[a-z0-9-]+(,[a-z0-9-]+)*$/, "must be feature names separated by commas, e.g. media,cas")
        .optional()
        .describe("serve only these features' tools, e.g. media,cas (default: all)"),
    })
    .strict(),
  output: z.object({}),
  annotations: { readOnly: false, destructive: false, idempotent: false },
  short: { t: "transport" },
  cliOnly: true,
  // Nothing on stdout after the session either: stdio mode owns it.
  human: () => "",
  async run({ transport, port, token, feature }, ctx) {
    // Loaded on use: the MCP SDK is not needed by any other command.
    const { createMcpServer } = await import("./server.ts");
    const version = (JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { version: string }).version;
    const deps = {
      registry: await ctx.registry(feature?.split(",")),
      config: ctx.config,
      configPath: ctx.configPath,
      log: ctx.log,
      version,
    };
    if (transport === "stdio") {
      const { StdioServerTransport } = await import("@modelcontextprotocol/sdk/server/stdio.js");
      const server = createMcpServer(deps);
      const t = new StdioServerTransport();
      await server.connect(t);
      ctx.log.debug("MCP server on stdio");
      await new Promise<void>((resolve) => {
        t.onclose = () => resolve();
        process.stdin.once("end", () => resolve());
        ctx.signal.addEventListener("abort", () => resolve(), { once: true });
      });
      await server.close();
      return {};
    }
    const tokenFile = join(ctx.paths.run, "mcp.token");
    let tok = token ?? process.env.AMI_STREAMS_MCP_TOKEN;
    if (!tok) {
      tok = existsSync(tokenFile) ? readFileSync(tokenFile, "utf8").trim() : randomBytes(24).toString("base64url");
      writeFileSync(tokenFile, `${tok}\n`, { mode: 0o600 });
    }
    const { startMcpHttp } = await import("./http.ts");
    const { installProcessGuards } = await import("../core/http/process-guards.ts");
    // A long-running listener: an error that escaped a request's boundary is logged, not fatal.
    installProcessGuards(ctx.log);
    const { server, url } = await startMcpHttp(deps, { host: "127.0.0.1", port, token: tok });
    process.stderr.write(`MCP server listening on ${url}\n`);
    if (!token && !process.env.AMI_STREAMS_MCP_TOKEN)
      process.stderr.write(`bearer token: ${tok} (from ${tokenFile})\n`);
    await new Promise<void>((resolve) => {
      ctx.signal.addEventListener("abort", () => resolve(), { once: true });
      process.once("SIGTERM", resolve);
    });
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    return {};
  },
});
