/**
 * Streamable HTTP transport (stateless: one server+transport per request) on 127.0.0.1 at POST /mcp,
 * guarded by a bearer token and Host-header checks against DNS rebinding.
 */
import { timingSafeEqual } from "node:crypto";
import type { Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { AmiError } from "../core/errors.ts";
import { createServer } from "../core/node-http.ts";
import { createMcpServer, type McpDeps } from "./server.ts";

export async function startMcpHttp(
  d: McpDeps,
  opts: { host: string; port: number; token: string },
): Promise<{ server: HttpServer; url: string }> {
  const want = Buffer.from(`Bearer ${opts.token}`);
  let port = opts.port;
  const http = createServer(async (req, res) => {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    if (path !== "/mcp") {
      res.writeHead(404, { "content-type": "application/json" }).end('{"error":"not found: the MCP endpoint is /mcp"}');
      return;
    }
    const got = Buffer.from(req.headers.authorization ?? "");
    if (got.length !== want.length || !timingSafeEqual(got, want)) {
      res.writeHead(401, { "content-type": "application/json", "www-authenticate": "Bearer" });
      res.end(
        JSON.stringify({ jsonrpc: "2.0", error: { code: -32001, message: "missing or wrong bearer token" }, id: null }),
      );
      return;
    }
    const server = createMcpServer(d);
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableDnsRebindingProtection: true,
      allowedHosts: [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`],
    });
    res.on("close", () => {
      void transport.close();
      void server.close();
    });
    try {
      await server.connect(transport);
      await transport.handleRequest(req, res);
    } catch (e) {
      d.log.error("MCP HTTP request failed", { error: String(e) });
      if (!res.headersSent) res.writeHead(500).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    http.once("error", (e: NodeJS.ErrnoException) =>
      reject(
        e.code === "EADDRINUSE" ? new AmiError("AMI_UNAVAILABLE", `MCP port ${opts.host}:${opts.port} is in use`) : e,
      ),
    );
    http.listen(opts.port, opts.host, resolve);
  });
  port = (http.address() as AddressInfo).port;
  return { server: http, url: `http://${opts.host}:${port}/mcp` };
}
