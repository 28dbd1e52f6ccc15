/**
 * The agent SDK (src/sdk/) against a real homeserver: an agent and a plain matrix-js-sdk Rust-crypto client
 * exchange encrypted messages both ways; the agent restarts from its storeDir as the same device (same keys, no
 * new device for the other side) and decrypts what was sent while it was down and before; `matrix room send
 * --encrypted` delivers a message the other client decrypts, from one device across calls.
 */

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { EventType, type MatrixClient, type MatrixEvent } from "matrix-js-sdk";
import { configSchema } from "../../src/config.ts";
import { loadRegistry } from "../../src/control/registry.ts";
import { silentLogger } from "../../src/core/logger.ts";
import type { OpContext, OpDef } from "../../src/core/ops.ts";
import { runtimePaths } from "../../src/core/paths.ts";
import { opsCryptoDir } from "../../src/matrix/ops/e2ee.ts";
import { matrixOps } from "../../src/matrix/ops/index.ts";
import { type Agent, type AgentMessage, createAgent } from "../../src/sdk/index.ts";
import { api, registerUser, type Session, sdkClient, startSynced, waitFor } from "./helpers/client.ts";
import { ChildHomeserver, tempDir } from "./helpers/homeserver.ts";

const PASSWORD = "correct horse battery";
const SECRET = randomBytes(24).toString("hex");

async function startRust(c: MatrixClient): Promise<void> {
  await c.initRustCrypto({ useIndexedDB: false });
  await startSynced(c, { initialSyncLimit: 50 });
}

/** Decrypted text bodies in a room of the plain client. */
const decrypted = (c: MatrixClient, roomId: string): string[] =>
  (c.getRoom(roomId)?.getLiveTimeline().getEvents() ?? [])
    .filter((e: MatrixEvent) => e.getType() === EventType.RoomMessage && e.isEncrypted() && !e.isDecryptionFailure())
    .map((e) => e.getContent().body as string);

const mode = (p: string) => statSync(p).mode & 0o777;

const hs = await ChildHomeserver.start({ matrix: { registration: { enabled: true, sharedSecret: SECRET } } });
after(async () => {
  const errors = hs.errorLines();
  await hs.dispose();
  assert.deepEqual(errors, [], "the homeserver logged internal errors");
});

describe("agent SDK: encrypted messaging with a persistent crypto store", () => {
  const u = randomBytes(3).toString("hex");
  const agentName = `agent${u}`;
  let bob: Session;
  let agentUserId = "";
  let cb: MatrixClient;
  let storeDir: string;
  let agent: Agent | undefined;
  let roomId = "";
  const home = tempDir("ami-sdk-home-");

  before(async () => {
    agentUserId = (await registerUser(hs.url, agentName, PASSWORD)).userId;
    bob = await registerUser(hs.url, `bob${u}`, PASSWORD);
    cb = sdkClient(hs.url, bob);
    await startRust(cb);
    storeDir = tempDir("ami-sdk-store-");
  });
  after(async () => {
    await agent?.stop();
    cb.stopClient();
    rmSync(storeDir, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
  });

  const opts = () => ({ homeserverUrl: hs.url, username: agentName, password: PASSWORD, storeDir });

  /** Devices of the agent's user as the homeserver's /keys/query reports them to bob. */
  const serverDevices = async (userId: string): Promise<Record<string, any>> =>
    (
      await api(hs.url, "POST", "/_matrix/client/v3/keys/query", {
        token: bob.accessToken,
        body: { device_keys: { [userId]: [] } },
      })
    ).json.device_keys[userId] ?? {};

  let deviceId = "";
  let keys: { curve25519: string; ed25519: string };

  it("an agent and a Rust-crypto client exchange encrypted messages both ways", async () => {
    agent = await createAgent(opts());
    deviceId = agent.deviceId;
    keys = await agent.identityKeys();
    assert.equal(agent.userId, agentUserId);
    assert.equal(mode(join(storeDir, "session.json")), 0o600);
    assert.equal(mode(join(storeDir, "store.v8")), 0o600);
    assert.equal(JSON.parse(readFileSync(join(storeDir, "session.json"), "utf8")).deviceId, deviceId);

    roomId = await agent.createRoom({ name: "sdk", invite: [bob.userId], encrypted: true });
    assert.equal(await agent.isEncrypted(roomId), true);
    await waitFor("bob sees the invite", () => cb.getRoom(roomId)?.getMyMembership() === "invite");
    await cb.joinRoom(roomId);
    await waitFor(
      "agent sees bob joined",
      () => agent?.client.getRoom(roomId)?.getMember(bob.userId)?.membership === "join",
    );

    const got: AgentMessage[] = [];
    agent.on("message", (m) => got.push(m));
    await agent.send(roomId, "hello bob", { encrypted: true });
    await waitFor("bob decrypts the agent", () => decrypted(cb, roomId).includes("hello bob"), 30_000);

    await cb.sendTextMessage(roomId, "hello agent");
    const m = await waitFor("agent decrypts bob", () => got.find((x) => x.body === "hello agent"), 30_000);
    assert.deepEqual([m.sender, m.roomId, m.encrypted, m.msgtype], [bob.userId, roomId, true, "m.text"]);
    assert.ok(!got.some((x) => x.body === "hello bob"), "own messages are not delivered by default");
    await assert.rejects(agent.send(roomId, "plain", { encrypted: false }), /is encrypted/);
  });

  it("restarts from storeDir as the same device and decrypts what was sent while down and before", async () => {
    assert.ok(agent);
    const before = await cb.getCrypto()!.getUserDeviceInfo([agentUserId], true);
    assert.deepEqual([...(before.get(agentUserId)?.keys() ?? [])], [deviceId]);
    await agent.stop();
    agent = undefined;

    await cb.sendTextMessage(roomId, "while you were away");
    // A fresh iterator after restart sees the message that arrived while the agent was down.
    agent = await createAgent(opts());
    const it = agent.messages();
    assert.equal(agent.deviceId, deviceId);
    assert.deepEqual(await agent.identityKeys(), keys);
    const first = await it.next();
    assert.equal(first.value?.body, "while you were away");
    assert.equal(first.value?.encrypted, true);

    const history = await agent.history(roomId, 50);
    const bodies = history.map((h) => h.body);
    assert.ok(bodies.includes("hello agent"), `history: ${JSON.stringify(bodies)}`);
    assert.ok(bodies.includes("while you were away"));
    assert.deepEqual(
      history.filter((h) => h.undecryptable),
      [],
    );

    await agent.send(roomId, "back again", { encrypted: true });
    await waitFor("bob decrypts after the restart", () => decrypted(cb, roomId).includes("back again"), 30_000);
    await cb.sendTextMessage(roomId, "welcome back");
    const next = await it.next();
    assert.equal(next.value?.body, "welcome back");
    await it.return?.();

    // No new device: not on the server, not in bob's view, same identity key.
    const devices = await serverDevices(agentUserId);
    assert.deepEqual(Object.keys(devices), [deviceId]);
    assert.equal(devices[deviceId].keys[`ed25519:${deviceId}`], keys.ed25519);
    const after = await cb.getCrypto()!.getUserDeviceInfo([agentUserId], true);
    assert.deepEqual([...(after.get(agentUserId)?.keys() ?? [])], [deviceId]);
  });

  it("`matrix room create --encrypted` and `matrix room send --encrypted` reach a Rust-crypto client", async () => {
    const config = configSchema.parse({ matrix: { ...hs.matrix, port: Number(new URL(hs.url).port) } });
    const ctx: OpContext = {
      config,
      configPath: undefined,
      registry: (only) => loadRegistry(config, only),
      paths: runtimePaths(home),
      log: silentLogger,
      progress: () => {},
      signal: new AbortController().signal,
      print: () => {},
      interactive: false,
    };
    const run = async (name: string, input: Record<string, unknown>) => {
      const d = matrixOps.find((o) => o.name === name) as OpDef;
      return d.output.parse(await d.run(d.input.parse(input), ctx)) as any;
    };
    const { roomId: opsRoom } = await run("matrix.room.create", {
      name: "ops e2ee",
      encrypted: true,
      invite: [bob.userId],
    });
    await waitFor("bob sees the ops invite", () => cb.getRoom(opsRoom)?.getMyMembership() === "invite");
    await cb.joinRoom(opsRoom);
    await waitFor("bob's room is encrypted", () => cb.getCrypto()!.isEncryptionEnabledInRoom(opsRoom));

    await run("matrix.room.send", { room: opsRoom, text: "from the CLI, encrypted", encrypted: true });
    await waitFor(
      "bob decrypts the op's message",
      () => decrypted(cb, opsRoom).includes("from the CLI, encrypted"),
      30_000,
    );
    const dir = opsCryptoDir(ctx);
    assert.ok(dir.startsWith(join(home, "data")));
    const session = JSON.parse(readFileSync(join(dir, "session.json"), "utf8"));
    assert.equal(mode(join(dir, "session.json")), 0o600);

    await run("matrix.room.send", { room: opsRoom, text: "second call, same device", encrypted: true });
    await waitFor("bob decrypts the second", () => decrypted(cb, opsRoom).includes("second call, same device"), 30_000);
    assert.equal(JSON.parse(readFileSync(join(dir, "session.json"), "utf8")).deviceId, session.deviceId);
    assert.deepEqual(Object.keys(await serverDevices(session.userId)), [session.deviceId]);

    // A plain room refuses an encrypted send instead of leaking plaintext.
    const { roomId: plain } = await run("matrix.room.create", { name: "plain" });
    await assert.rejects(run("matrix.room.send", { room: plain, text: "x", encrypted: true }), /not encrypted/);
  });
});
