/** MCP over stdio and streamable HTTP with the real SDK client: tool list, annotations, structured results, auth, progress. */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { after, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { binEntry, testServiceHome } from "../../src/test/cli.ts";
import { startMcpHttp } from "../../src/test/mcp.ts";

const h = await testServiceHome();
const children: ChildProcess[] = [];
after(async () => {
  for (const c of children) c.kill("SIGTERM");
  await h.cleanup();
});

function checkTools(tools: Awaited<ReturnType<Client["listTools"]>>["tools"]) {
  const names = tools.map((t) => t.name);
  for (const n of ["status", "up", "down", "testsvc_start", "testsvc_status", "config_validate", "cdn_deploy"]) {
    assert.ok(names.includes(n), `tool ${n} missing from ${names.join(", ")}`);
  }
  for (const cliOnly of ["mcp", "monitor", "logs", "serve", "supervise", "test"])
    assert.ok(!names.includes(cliOnly), cliOnly);
  const status = tools.find((t) => t.name === "status")!;
  assert.deepEqual(
    { ...status.annotations, title: undefined },
    { title: undefined, readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  );
  assert.equal(status.outputSchema?.type, "object");
  assert.ok(status.outputSchema?.properties?.services);
  const down = tools.find((t) => t.name === "down")!;
  assert.equal(down.annotations?.destructiveHint, true);
}

test("stdio: lists tools, calls a read-only op, errors are isError results, progress arrives, stdout is protocol only", async () => {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [binEntry, "mcp"],
    env: h.env as Record<string, string>,
    stderr: "pipe",
  });
  const client = new Client({ name: "test", version: "1" });
  await client.connect(transport);
  try {
    checkTools((await client.listTools()).tools);
    const st = await client.callTool({ name: "status", arguments: {} });
    assert.ok(!st.isError);
    const sc = st.structuredContent as {
      supervisor: { running: boolean };
      services: { name: string; enabled: boolean }[];
    };
    assert.equal(sc.supervisor.running, false);
    assert.deepEqual(
      sc.services.filter((s) => s.enabled).map((s) => s.name),
      ["testsvc"],
    );
    const nb = await client.callTool({ name: "p2p_start", arguments: {} });
    assert.equal(nb.isError, true);
    assert.match(JSON.stringify(nb.content), /AMI_INVALID_CONFIG.*p2p\.enabled|p2p\.enabled.*AMI_INVALID_CONFIG/);
    const bad = await client.callTool({ name: "config_validate", arguments: { file: 42 } });
    assert.equal(bad.isError, true);
    assert.match(JSON.stringify(bad.content), /AMI_INVALID_INPUT/);
    // `up` reports progress while it waits for health checks.
    const progress: number[] = [];
    const up = await client.callTool({ name: "up", arguments: {} }, undefined, {
      onprogress: (p) => progress.push(p.progress),
      timeout: 120_000,
    });
    assert.ok(!up.isError, JSON.stringify(up.content));
    assert.ok(progress.length > 0, "no progress notifications");
    const svc = await client.callTool({ name: "testsvc_status", arguments: {} });
    assert.equal((svc.structuredContent as { state: string }).state, "running");
    const down = await client.callTool({ name: "down", arguments: {} });
    assert.equal((down.structuredContent as { stopped: boolean }).stopped, true);
  } finally {
    await client.close();
  }
});

async function startHttp(token: string): Promise<string> {
  const mcp = await startMcpHttp({ env: h.env, token });
  children.push(mcp.child);
  mcp.child.once("exit", () => assert.equal(mcp.stdout(), "", "nothing on stdout in http mode either"));
  return mcp.url;
}

test("http: bearer token required; with it, lists tools and calls status", async () => {
  const token = "t".repeat(32);
  const url = await startHttp(token);
  const raw = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
  assert.equal(raw.status, 401);
  const wrong = new Client({ name: "test", version: "1" });
  await assert.rejects(() =>
    wrong.connect(
      new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: "Bearer nope" } } }),
    ),
  );
  const client = new Client({ name: "test", version: "1" });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${token}` } } }),
  );
  try {
    checkTools((await client.listTools()).tools);
    const st = await client.callTool({ name: "status", arguments: {} });
    assert.ok(!st.isError);
    assert.equal(typeof (st.structuredContent as { supervisor: { running: boolean } }).supervisor.running, "boolean");
  } finally {
    await client.close();
  }
});
