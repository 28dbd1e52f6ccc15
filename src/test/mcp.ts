/**
 * The request a normal MCP client opens a streamable-HTTP session with: for tests that need to know an
 * `ami-streams mcp --transport http` server is up and serving (not just listening).
 */

/** POSTs a JSON-RPC `initialize` to `url` (the server's `/mcp`) with the bearer `token`; a served one answers 200. */
export function mcpInitialize(url: string, token: string): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
    },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "probe", version: "1" } },
    }),
  });
}
