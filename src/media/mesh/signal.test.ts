/**
 * The mesh's swarm rules with real WebSocket clients on a kit listener: links per viewer are capped, SDP/ICE goes
 * only between linked viewers, a leaving viewer's partners get new ones, a reported peer is never linked again,
 * and the offload figures add up the viewers' counters (also of viewers that left).
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { WebSocket } from "ws";
import type { HttpListener } from "../../core/http/server.ts";
import { silentLogger } from "../../core/logger.ts";
import { listenMesh } from "../../test/mesh.ts";
import { meshSchema } from "../config.ts";
import type { Outputs } from "../outputs.ts";
import { MESH_PATH } from "./protocol.ts";
import { MeshSignal } from "./signal.ts";

// The swarm asks outputs only whether the path exists.
const outputs = { get: (p: string) => (p === "live/a" ? {} : undefined) } as unknown as Outputs;
const mesh = new MeshSignal({ config: meshSchema.parse({ enabled: true, maxPeers: 2 }), outputs, log: silentLogger });
let listener: HttpListener;
let port = 0;

before(async () => {
  ({ port, listener } = await listenMesh(mesh, "mesh test"));
});

after(async () => {
  mesh.close();
  await listener.close();
});

interface Client {
  ws: WebSocket;
  id: string;
  inbox: Record<string, unknown>[];
  next(t: string): Promise<Record<string, unknown>>;
}

async function join(): Promise<Client> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${MESH_PATH}?path=live/a`);
  const inbox: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  ws.on("message", (d) => {
    inbox.push(JSON.parse(String(d)));
    for (const w of waiters.splice(0)) w();
  });
  const next = async (t: string) => {
    for (;;) {
      const i = inbox.findIndex((m) => m.t === t);
      if (i >= 0) return inbox.splice(i, 1)[0] as Record<string, unknown>;
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  const welcome = await next("welcome");
  return { ws, id: welcome.id as string, inbox, next };
}

const settle = () => new Promise((r) => setTimeout(r, 100));

test("links are capped, signals go only between linked viewers, leavers are replaced", async () => {
  const a = await join();
  const b = await join();
  assert.deepEqual(await b.next("peer"), { t: "peer", id: a.id, offer: true });
  assert.deepEqual(await a.next("peer"), { t: "peer", id: b.id, offer: false });
  const c = await join();
  const d = await join();
  await settle();
  // a and b are full (maxPeers 2: a-b, a-c, b-c); d finds nobody with room.
  assert.equal(d.inbox.filter((m) => m.t === "peer").length, 0);
  c.ws.send(JSON.stringify({ t: "signal", to: a.id, data: { sdp: { type: "offer", sdp: "v=0" } } }));
  assert.deepEqual(await a.next("signal"), { t: "signal", from: c.id, data: { sdp: { type: "offer", sdp: "v=0" } } });
  d.ws.send(JSON.stringify({ t: "signal", to: a.id, data: { candidate: { candidate: "" } } }));
  await settle();
  assert.equal(a.inbox.filter((m) => m.t === "signal").length, 0, "d is not linked to a");
  // a leaves: b and c each lose a link and take d.
  a.ws.close();
  assert.deepEqual(await b.next("gone"), { t: "gone", id: a.id });
  await settle();
  const dPeers = d.inbox.filter((m) => m.t === "peer").map((m) => m.id);
  assert.deepEqual(new Set(dPeers), new Set([b.id, c.id]));
  // d reports b for a bad segment: unlinked, and b is not offered to d again.
  d.inbox.length = 0;
  d.ws.send(JSON.stringify({ t: "bad", id: b.id }));
  assert.deepEqual(await d.next("gone"), { t: "gone", id: b.id });
  await settle();
  assert.ok(!d.inbox.some((m) => m.t === "peer" && m.id === b.id));
  for (const x of [b, c, d]) x.ws.close();
  await settle();
});

test("offload figures add up live and departed viewers' counters, which only grow", async () => {
  const before = mesh.status("live/a") ?? { peerBytes: 0, httpBytes: 0, rejected: 0 };
  const a = await join();
  const b = await join();
  a.ws.send(JSON.stringify({ t: "stats", peer: 300, http: 100, rejected: 0 }));
  b.ws.send(JSON.stringify({ t: "stats", peer: 0, http: 400, rejected: 1 }));
  await settle();
  a.ws.send(JSON.stringify({ t: "stats", peer: 10, http: 10, rejected: 0 }));
  a.ws.close();
  await settle();
  const s = mesh.status("live/a");
  assert.equal(s?.viewers, 1);
  assert.equal((s?.peerBytes ?? 0) - before.peerBytes, 300);
  assert.equal((s?.httpBytes ?? 0) - before.httpBytes, 500);
  assert.equal((s?.rejected ?? 0) - before.rejected, 1);
  b.ws.close();
});

test("an unknown stream is refused before the upgrade", async () => {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${MESH_PATH}?path=live/none`);
  const status = await new Promise((r) => ws.once("unexpected-response", (_q, res) => r(res.statusCode)));
  assert.equal(status, 404);
});

test("a deeply nested signal closes its sender's socket and never reaches (or crashes) the server", async () => {
  const a = await join();
  const b = await join();
  await b.next("peer");
  // Parses fine (V8's JSON.parse is iterative) but would overflow JSON.stringify's stack when relayed.
  const n = 7000;
  const deep = `{"t":"signal","to":"${a.id}","data":{"sdp":${"[".repeat(n)}${"]".repeat(n)}}}`;
  const closed = new Promise<number>((r) => b.ws.once("close", (code) => r(code)));
  b.ws.send(deep);
  assert.equal(await closed, 4400);
  // Only the documented fields of an SDP or a candidate are relayed.
  const c = await join();
  await c.next("peer");
  c.ws.send(
    JSON.stringify({ t: "signal", to: a.id, data: { sdp: { type: "offer", sdp: "v=0", from: "ffffffffffffffff" } } }),
  );
  assert.deepEqual(await a.next("signal"), { t: "signal", from: c.id, data: { sdp: { type: "offer", sdp: "v=0" } } });
  for (const x of [a, c]) x.ws.close();
  await settle();
});

test("'bad' reports of ids that are not linked are not remembered (a socket's memory stays bounded)", async () => {
  const a = await join();
  for (let i = 0; i < 30; i++) a.ws.send(JSON.stringify({ t: "bad", id: i.toString(16).padStart(16, "0") }));
  await settle();
  assert.equal(mesh.avoided(a.id), 0);
  a.ws.close();
  await settle();
});

test("a viewer that stops reading is cut off instead of buffering what its peers send it", async () => {
  // A fast sender (1,000 messages/s) and a peer that never reads: past the kernel's buffers the server would queue
  // everything in memory for as long as the reader keeps its socket open.
  const fast = new MeshSignal({
    config: meshSchema.parse({ enabled: true, maxPeers: 2, messagesPerSecond: 1000, maxMessageBytes: 64 * 1024 }),
    outputs,
    log: silentLogger,
  });
  const { port: p, listener: l } = await listenMesh(fast, "mesh slow reader");
  const open = async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${p}${MESH_PATH}?path=live/a`);
    const first = await new Promise<Record<string, unknown>>((r) =>
      ws.once("message", (d) => r(JSON.parse(String(d)))),
    );
    return { ws, id: first.id as string };
  };
  const reader = await open();
  const sender = await open();
  try {
    await settle();
    // The client's TCP socket, paused so nothing more is read.
    (reader.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const sdp = "a".repeat(60 * 1024);
    let gone = false;
    sender.ws.on("message", (d) => {
      if (JSON.parse(String(d)).t === "gone") gone = true;
    });
    for (let i = 0; i < 1500 && !gone; i++) {
      sender.ws.send(JSON.stringify({ t: "signal", to: reader.id, data: { sdp: { type: "offer", sdp } } }));
      if (i % 50 === 49) await new Promise((r) => setTimeout(r, 20));
    }
    await settle();
    assert.ok(gone, "the sender was told its non-reading peer is gone");
    assert.equal(fast.status("live/a")?.viewers, 1);
  } finally {
    sender.ws.terminate();
    reader.ws.terminate();
    fast.close();
    await l.close();
  }
});
