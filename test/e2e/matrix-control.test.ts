/**
 * The control plane driving the real homeserver: the seed's shell functions start/stop/query it, the MCP
 * server (stdio and streamable HTTP) lists and calls matrix tools, a message sent through MCP reaches a
 * matrix-js-sdk client, and the supervisor restarts a homeserver that was killed.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ClientEvent, type MatrixEvent, RoomEvent } from "matrix-js-sdk";
import { binEntry, cli, freePort, json, shell, tempHome, until } from "../../src/test/cli.ts";
import { loginUser, sdkClient, waitFor } from "./helpers/client.ts";

const port = await freePort();
// dead.test never answers (a port nobody listens on): its queue and backoff show in the monitor.
const deadPort = await freePort();
const h = tempHome({
  control: { port: 0, backoff: { initialMs: 100 } },
  matrix: {
    port,
    serverName: "ctl.test",
    federation: { enabled: true, hostMap: { "dead.test": `http://127.0.0.1:${deadPort}` }, retryInitialMs: 60_000 },
  },
});
const base = `http://127.0.0.1:${port}`;
const children: ChildProcess[] = [];
after(async () => {
  for (const c of children) c.kill("SIGTERM");
  await h.cleanup();
});

function structured(r: Awaited<ReturnType<Client["callTool"]>>): any {
  assert.ok(!r.isError, JSON.stringify(r.content));
  return r.structuredContent;
}

before(async () => {
  // The seed's alias starts the homeserver under the supervisor.
  const r = await shell("amatstart", { env: h.env });
  assert.equal(r.code, 0, r.stderr + r.stdout);
});

test("amatst reports the running homeserver; it answers /versions", async () => {
  const st = await shell("amatst; echo rc=$?", { env: h.env });
  assert.match(st.stdout, /running/);
  assert.match(st.stdout, /rc=0/);
  const v = await (await fetch(`${base}/_matrix/client/versions`)).json();
  assert.ok(v.versions.includes("v1.11"));
});

test("ast --smoke checks the running homeserver end to end (register, room, send, sync, read back)", async () => {
  const r = await shell("ast --smoke", { env: h.env });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /sync sees the message/);
  assert.match(r.stdout, /all passed/);
});

test("MCP over stdio: matrix tools listed with annotations; matrix_status; a message sent with matrix_room_send reaches matrix-js-sdk", async () => {
  const client = new Client({ name: "e2e", version: "1" });
  await client.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [binEntry, "mcp"],
      env: h.env as Record<string, string>,
      stderr: "pipe",
    }),
  );
  try {
    const tools = (await client.listTools()).tools;
    const byName = new Map(tools.map((t) => [t.name, t]));
    for (const n of [
      "matrix_status",
      "matrix_room_send",
      "matrix_room_create",
      "matrix_user_create",
      "matrix_room_messages",
    ])
      assert.ok(byName.has(n), `missing tool ${n}`);
    assert.equal(byName.get("matrix_status")?.annotations?.readOnlyHint, true);
    assert.equal(byName.get("matrix_room_send")?.annotations?.readOnlyHint, false);
    assert.equal(byName.get("matrix_user_deactivate")?.annotations?.destructiveHint, true);

    const status = structured(await client.callTool({ name: "matrix_status", arguments: {} }));
    assert.match(JSON.stringify(status), /running/);

    structured(
      await client.callTool({
        name: "matrix_user_create",
        arguments: { username: "alice", password: "alice-password-1" },
      }),
    );
    const room = structured(
      await client.callTool({
        name: "matrix_room_create",
        arguments: { name: "Agents", alias: "agents", invite: ["alice"] },
      }),
    );
    const roomId: string = room.roomId ?? room.room_id;
    assert.match(roomId, /^!/);

    // Alice, on matrix-js-sdk, joins and listens.
    const alice = sdkClient(base, await loginUser(base, "alice", "alice-password-1"));
    const seen: string[] = [];
    alice.on(RoomEvent.Timeline, (ev: MatrixEvent) => {
      if (ev.getType() === "m.room.message" && ev.getRoomId() === roomId) seen.push(ev.getContent().body);
    });
    await alice.startClient({ initialSyncLimit: 10 });
    await new Promise<void>((r) => alice.once(ClientEvent.Sync, () => r()));
    await alice.joinRoom(roomId);
    try {
      const sent = structured(
        await client.callTool({
          name: "matrix_room_send",
          arguments: { room: "#agents:ctl.test", text: "hello from MCP stdio" },
        }),
      );
      assert.match(sent.eventId ?? sent.event_id, /^\$/);
      await waitFor("alice sees the MCP message", () => seen.includes("hello from MCP stdio"));

      // And over streamable HTTP with a bearer token.
      const token = "k".repeat(40);
      const mcpPort = await freePort();
      const child = spawn(
        process.execPath,
        [binEntry, "mcp", "--transport", "http", "--port", String(mcpPort), "--token", token],
        {
          env: h.env,
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      children.push(child);
      const url = `http://127.0.0.1:${mcpPort}/mcp`;
      await until("MCP HTTP listening", async () => (await fetch(url, { method: "GET" }).catch(() => null)) !== null);
      const http = new Client({ name: "e2e-http", version: "1" });
      await http.connect(
        new StreamableHTTPClientTransport(new URL(url), {
          requestInit: { headers: { authorization: `Bearer ${token}` } },
        }),
      );
      structured(
        await http.callTool({ name: "matrix_room_send", arguments: { room: roomId, text: "hello from MCP http" } }),
      );
      await waitFor("alice sees the MCP HTTP message", () => seen.includes("hello from MCP http"));
      const msgs = structured(
        await http.callTool({ name: "matrix_room_messages", arguments: { room: roomId, limit: 10 } }),
      );
      assert.deepEqual(
        msgs.messages.map((m: any) => m.body).filter((b: string) => b.startsWith("hello from MCP")),
        ["hello from MCP stdio", "hello from MCP http"],
      );
      await http.close();
    } finally {
      alice.stopClient();
    }
  } finally {
    await client.close();
  }
});

test("monitor shows the homeserver's federation destinations: queue depth, last success, backoff", async () => {
  const alice = await loginUser(base, "alice", "alice-password-1");
  const r = await fetch(`${base}/_matrix/client/v3/sendToDevice/m.test/mon1`, {
    method: "PUT",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${alice.accessToken}` },
    body: JSON.stringify({ messages: { "@x:dead.test": { D: { n: 1 } } } }),
  });
  assert.equal(r.status, 200, await r.text());
  const dest = await until("dead.test backing off in the monitor", async () => {
    const m = json(await cli(["monitor", "--once", "--json"], { env: h.env }));
    const row = m.services.find((s: { name: string }) => s.name === "matrix");
    const d = row?.federation.find((x: { destination: string }) => x.destination === "dead.test");
    return d?.backoffS > 0 ? { row, d } : undefined;
  });
  assert.deepEqual(
    { ...dest.d, backoffS: 0 },
    { destination: "dead.test", queued: 1, lastSuccessSAgo: null, backoffS: 0 },
  );
  assert.ok(dest.d.backoffS <= 72, `backoff ${dest.d.backoffS}s`);
  assert.equal(dest.row.stats.federation_destinations, 1);
  assert.ok(!Object.keys(dest.row.stats).some((k) => k.startsWith("federation_dest_")));
  const human = await cli(["monitor", "--once"], { env: h.env });
  assert.match(human.stdout, /DESTINATION\s+QUEUED\s+LAST SUCCESS\s+BACKOFF/);
  assert.match(human.stdout, /matrix\s+dead\.test\s+1\s+never\s+(\d+m)?\d+s/);
});

test("the supervisor restarts a killed homeserver, status shows the restart, data survives", async () => {
  const before = json(await cli(["matrix", "status", "--json"], { env: h.env }));
  const pid: number = before.pid ?? before.service?.pid;
  assert.ok(pid > 0, JSON.stringify(before));
  process.kill(pid, "SIGKILL");
  const afterStatus = await until("matrix restarted", async () => {
    const s = json(await cli(["matrix", "status", "--json"], { env: h.env }));
    const p = s.pid ?? s.service?.pid;
    return p && p !== pid && (s.state ?? s.service?.state) === "running" ? s : undefined;
  });
  assert.ok((afterStatus.restarts ?? afterStatus.service?.restarts) >= 1, JSON.stringify(afterStatus));
  const users = json(await cli(["matrix", "user", "list", "--json"], { env: h.env }));
  assert.ok(JSON.stringify(users).includes("@alice:ctl.test"));
  assert.ok(readFileSync(join(h.home, "logs", "matrix.log"), "utf8").length > 0);
});

test("amatstop stops it; amatst then exits 3; stopping again is a no-op", async () => {
  const stop = await shell("amatstop", { env: h.env });
  assert.equal(stop.code, 0, stop.stderr);
  const st = await shell("amatst; echo rc=$?", { env: h.env });
  assert.match(st.stdout, /rc=3/);
  const again = await shell("amatstop; echo rc=$?", { env: h.env });
  assert.match(again.stdout, /rc=0/);
  const down = await fetch(`${base}/_matrix/client/versions`).catch(() => null);
  assert.equal(down, null);
});
