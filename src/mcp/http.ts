/**
 * Streamable HTTP transport (stateless: one server+transport per request) on 127.0.0.1 at POST /mcp.
 * Every request passes the Host/Origin check (DNS rebinding) and the bearer token before anything else is
 * looked at; the HTTP kit has already answered 400 to a malformed request target.
 */
import type { Server as HttpServer, IncomingMessage, ServerResponse } from "node:http";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { baseUrl } from "../core/http/address.ts";
import { bearerMatches } from "../core/http/bearer.ts";
import { allowedHosts, rebindingRefusal } from "../core/http/host-check.ts";
import { sendJson } from "../core/http/reply.ts";
import { createHttpListener } from "../core/http/server.ts";
import type { Target } from "../core/http/target.ts";
import { createMcpServer, type McpDeps } from "./server.ts";

const rpcError = (code: number, message: string) => ({ jsonrpc: "2.0", error: { code, message }, id: null });

export async function startMcpHttp(
  d: McpDeps,
  opts: { host: string; port: number; token: string },
): Promise<{ server: HttpServer; url: string }> {
  const hosts = allowedHosts(opts.host);

  async function handle(req: IncomingMessage, res: ServerResponse, target: Target): Promise<void> {
    const refusal = rebindingRefusal(req, hosts);
    if (refusal !== null) return sendJson(res, 403, rpcError(-32003, refusal));
    if (!bearerMatches(req.headers.authorization, opts.token))
      return sendJson(res, 401, rpcError(-32001, "missing or wrong bearer token"), { "WWW-Authenticate": "Bearer" });
    if (target.pathname !== "/mcp") return sendJson(res, 404, rpcError(-32004, "not found: the MCP endpoint is /mcp"));
    const server = createMcpServer(d);
    // The Host/Origin check above is the one rebinding rule; the SDK's own would only repeat it.
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on("close", () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res);
  }

  const listener = createHttpListener({ name: "MCP HTTP", log: d.log, handler: handle });
  const port = await listener.listen(opts.port, opts.host);
  return { server: listener.server, url: `${baseUrl("http", opts.host, port)}/mcp` };
}
