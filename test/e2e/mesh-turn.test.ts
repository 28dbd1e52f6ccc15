/**
 * The viewer mesh with our TURN: coturn started as the turn feature starts it (turnArgv, its shared secret in a
 * 0600 file), the mesh signalling built from the same config (meshTurn), and the TURN credentials a viewer finds in
 * its `welcome` accepted by coturn for a relay allocation. A tampered password and the same user with an expiry in
 * the past (HMAC right, time wrong) are refused: coturn really checks them.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { WebSocket } from "ws";
import { configSchema } from "../../src/config.ts";
import { createHttpListener, type HttpListener } from "../../src/core/http/server.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { MESH_PATH } from "../../src/media/mesh/protocol.ts";
import { MeshSignal } from "../../src/media/mesh/signal.ts";
import { meshTurn } from "../../src/media/mesh/turn.ts";
import type { Outputs } from "../../src/media/outputs.ts";
import { freePort, until } from "../../src/test/cli.ts";
import { turnArgv, turnDir, turnSecret } from "../../src/turn/coturn.ts";
import { turnAllocate } from "./helpers/turn-client.ts";

const home = mkdtempSync(join(tmpdir(), "mesh-turn-e2e-"));
const turnPort = await freePort();
const minPort = 40000 + Math.floor(Math.random() * 10000);
const config = configSchema.parse({
  home,
  turn: { enabled: true, port: turnPort, minPort, maxPort: minPort + 10 },
  media: { mesh: { enabled: true } },
});
const outputs = { get: (p: string) => (p === "live/a" ? {} : undefined) } as unknown as Outputs;
let coturn: ChildProcess | undefined;
let mesh: MeshSignal | undefined;
let listener: HttpListener | undefined;
let port = 0;

before(async () => {
  mkdirSync(turnDir(config), { recursive: true });
  const [bin, ...args] = turnArgv(config);
  coturn = spawn(bin as string, args, { stdio: "ignore" });
  await until(
    "coturn listening",
    () =>
      new Promise<boolean>((resolve) => {
        const s = connect(turnPort, "127.0.0.1", () => {
          s.destroy();
          resolve(true);
        });
        s.on("error", () => resolve(false));
      }),
    15_000,
  );
  mesh = new MeshSignal({ config: config.media.mesh, outputs, log: silentLogger, turn: meshTurn(config) });
  listener = createHttpListener({
    name: "mesh turn e2e",
    log: silentLogger,
    handler: (_q, res) => res.writeHead(404).end(),
    upgrade: (req, socket, head, t) => mesh?.upgrade(req, socket, head, t),
  });
  port = await listener.listen(0, "127.0.0.1");
});

after(async () => {
  mesh?.close();
  await listener?.close();
  coturn?.kill("SIGTERM");
  rmSync(home, { recursive: true, force: true });
});

test("a mesh viewer's TURN credentials from its welcome get a relay from coturn; forged ones do not", async () => {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${MESH_PATH}?path=live/a`);
  const welcome = JSON.parse(await new Promise<string>((r) => ws.once("message", (d) => r(String(d)))));
  ws.close();
  const [ice] = welcome.ice as { urls: string[]; username: string; credential: string }[];
  assert.ok(ice, "the welcome carries our TURN");
  assert.deepEqual(ice.urls, [`turn:127.0.0.1:${turnPort}?transport=udp`, `turn:127.0.0.1:${turnPort}?transport=tcp`]);
  assert.match(ice.username, new RegExp(`^\\d+:mesh-${welcome.id}$`));
  assert.ok(!JSON.stringify(welcome).includes(turnSecret(config)));

  assert.equal(await turnAllocate("127.0.0.1", turnPort, ice.username, ice.credential), "allocated");
  const tampered = `${ice.credential.slice(0, -4)}AAA=`;
  assert.equal(await turnAllocate("127.0.0.1", turnPort, ice.username, tampered), 401);
  // Same user, valid HMAC, an expiry a minute ago: refused for its time alone.
  const expired = `${Math.floor(Date.now() / 1000) - 60}:mesh-${welcome.id}`;
  const expiredPass = createHmac("sha1", turnSecret(config)).update(expired).digest("base64");
  assert.equal(await turnAllocate("127.0.0.1", turnPort, expired, expiredPass), 401);
});
