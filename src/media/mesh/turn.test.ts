/**
 * Our TURN for the mesh: a viewer's `welcome` carries the configured ICE servers untouched plus our TURN URIs with
 * credentials of its own that coturn's REST scheme accepts (HMAC recomputed here), expiring within the TTL; the
 * shared secret is in no message. meshTurn() follows the `turn` feature and `media.mesh.turn`.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { WebSocket } from "ws";
import { type Config, configSchema } from "../../config.ts";
import type { HttpListener } from "../../core/http/server.ts";
import { silentLogger } from "../../core/logger.ts";
import { listenMesh } from "../../test/mesh.ts";
import { turnSecret, turnUris } from "../../turn/coturn.ts";
import { meshSchema } from "../config.ts";
import type { Outputs } from "../outputs.ts";
import { MESH_PATH } from "./protocol.ts";
import { MeshSignal } from "./signal.ts";
import { meshTurn } from "./turn.ts";

const SECRET = "s3cret-of-the-turn-feature-0123456789";
const TTL = 3600;
const stun = { urls: "stun:stun.example.org:3478" };
const outputs = { get: (p: string) => (p === "live/a" ? {} : undefined) } as unknown as Outputs;
const mesh = new MeshSignal({
  config: meshSchema.parse({ enabled: true, iceServers: [stun] }),
  outputs,
  log: silentLogger,
  turn: { secret: SECRET, uris: ["turn:203.0.113.5:3478?transport=udp"], ttlSeconds: TTL },
});
let listener: HttpListener;
let port = 0;
const home = mkdtempSync(join(tmpdir(), "mesh-turn-"));

before(async () => {
  ({ port, listener } = await listenMesh(mesh, "mesh turn test"));
});
after(async () => {
  mesh.close();
  await listener.close();
  rmSync(home, { recursive: true, force: true });
});

async function welcome(): Promise<{ raw: string; m: { id: string; ice: Record<string, unknown>[] } }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${MESH_PATH}?path=live/a`);
  const raw = await new Promise<string>((resolve, reject) => {
    ws.once("message", (d) => resolve(String(d)));
    ws.once("error", reject);
  });
  ws.close();
  return { raw, m: JSON.parse(raw) };
}

test("each viewer gets its own short-lived TURN credentials, valid in coturn's scheme; the secret is not sent", async () => {
  const before = Math.floor(Date.now() / 1000);
  const a = await welcome();
  const b = await welcome();
  for (const { raw, m } of [a, b]) {
    assert.ok(!raw.includes(SECRET), "the shared secret never goes to a browser");
    assert.equal(m.ice.length, 2);
    assert.deepEqual(m.ice[0], stun, "configured servers are handed out as they are");
    const t = m.ice[1] as { urls: string[]; username: string; credential: string };
    assert.deepEqual(t.urls, ["turn:203.0.113.5:3478?transport=udp"]);
    const [expiry, user] = t.username.split(":");
    assert.equal(user, `mesh-${m.id}`, "bound to the viewer's mesh id");
    const after = Math.floor(Date.now() / 1000);
    assert.ok(Number(expiry) >= before + TTL && Number(expiry) <= after + TTL, `expiry ${expiry}`);
    assert.equal(t.credential, createHmac("sha1", SECRET).update(t.username).digest("base64"));
  }
  assert.notEqual(a.m.ice[1]?.username, b.m.ice[1]?.username);
});

test("a viewer still there at half its credentials' lifetime gets fresh ones", async () => {
  const short = new MeshSignal({
    config: meshSchema.parse({ enabled: true }),
    outputs,
    log: silentLogger,
    turn: { secret: SECRET, uris: ["turn:203.0.113.5:3478"], ttlSeconds: 2 },
    sweepMs: 200,
  });
  const { port: p, listener: l } = await listenMesh(short, "mesh turn refresh");
  try {
    const ws = new WebSocket(`ws://127.0.0.1:${p}${MESH_PATH}?path=live/a`);
    const got: { t: string; ice: { username: string; credential: string }[] }[] = [];
    ws.on("message", (d) => got.push(JSON.parse(String(d))));
    // Renewed at the first sweep 1 s after the welcome (waited for, not timed: the machine may be loaded).
    for (let i = 0; i < 100 && !got.some((m) => m.t === "ice"); i++) await new Promise((r) => setTimeout(r, 100));
    ws.close();
    const [first, ...fresh] = got;
    assert.equal(first?.t, "welcome");
    assert.ok(fresh.length >= 1 && fresh.every((m) => m.t === "ice"), JSON.stringify(got));
    const old = first?.ice[0]?.username ?? "";
    const renewed = fresh.at(-1)?.ice[0];
    assert.ok(renewed && Number(renewed.username.split(":")[0]) > Number(old.split(":")[0]), "a later expiry");
    assert.equal(renewed.credential, createHmac("sha1", SECRET).update(renewed.username).digest("base64"));
  } finally {
    short.close();
    await l.close();
  }
});

const config = (o: { turn?: object; mesh?: object }): Config =>
  configSchema.parse({ home, turn: o.turn ?? {}, media: { mesh: { enabled: true, ...o.mesh } } });

test("meshTurn: on with the turn feature, same secret and URIs as coturn's; off with turn off or mesh.turn false", () => {
  const c = config({ turn: { enabled: true, port: 3479 } });
  const t = meshTurn(c);
  assert.ok(t);
  assert.equal(t.secret, turnSecret(c), "the secret coturn is started with");
  assert.deepEqual(t.uris, turnUris(c));
  assert.equal(t.ttlSeconds, 3600);
  assert.equal(meshTurn(config({ turn: { enabled: true }, mesh: { turn: false } })), undefined);
  assert.equal(meshTurn(config({ turn: { enabled: false } })), undefined);
  assert.throws(() => config({ mesh: { turnTtlSeconds: 10 } }));
});
