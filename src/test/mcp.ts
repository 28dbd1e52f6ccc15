/**
 * `ami-streams mcp --transport http` for tests: starting it, and the request a normal MCP client opens a
 * streamable-HTTP session with (to know the server is up and serving, not just listening).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { binEntry } from "./cli.ts";

export interface McpHttp {
  child: ChildProcess;
  /** The URL the server said it listens on (its /mcp endpoint). */
  url: string;
  /** Everything the server has written on stdout (nothing, in http mode). */
  stdout(): string;
}

/**
 * Starts `ami-streams mcp --transport http --port <port> --token <token>` (port 0: any free one) and waits for its
 * `listening on <url>` line; rejects if it exits first or says nothing within `timeoutMs` (then it is killed).
 */
export function startMcpHttp(o: {
  env: NodeJS.ProcessEnv;
  token: string;
  port?: number;
  timeoutMs?: number;
}): Promise<McpHttp> {
  const args = [binEntry, "mcp", "--transport", "http", "--port", String(o.port ?? 0), "--token", o.token];
  const child = spawn(process.execPath, args, { env: o.env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout?.on("data", (d) => (out += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`mcp http did not start: ${err}`));
    }, o.timeoutMs ?? 60_000);
    child.stderr?.on("data", (d) => {
      err += d;
      const m = /listening on (http:\/\/\S+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1] as string, stdout: () => out });
      }
    });
    child.once("exit", (c) => {
      clearTimeout(timer);
      reject(new Error(`mcp http exited ${c}: ${err}`));
    });
  });
}

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
