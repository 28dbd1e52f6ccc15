/**
 * The SRT listener with a raw UDP caller: a session whose publisher's bytes make its consumer throw is closed
 * (with a shutdown to the caller); the process goes on and the listener takes the next caller.
 */
import assert from "node:assert/strict";
import { randomInt } from "node:crypto";
import { createSocket, type Socket } from "node:dgram";
import { after, before, test } from "node:test";
import { createLogger, silentLogger } from "../../../core/logger.ts";
import { Hub } from "../../hub.ts";
import { encodeStreamId, HS_CONCLUSION, HS_INDUCTION } from "./handshake.ts";
import { MAX_PEER_LATENCY_MS, SrtServer } from "./server.ts";

const hub = new Hub({ readerQueue: 64, gopCache: 64 });
let server: SrtServer;
let pushes = 0;

before(async () => {
  server = await SrtServer.start({
    host: "127.0.0.1",
    port: 0,
    hub,
    log: silentLogger,
    sink: () => ({
      push: () => {
        pushes++;
        throw new RangeError("a consumer bug reached by the peer's bytes");
      },
      end: () => {},
    }),
  });
});

after(() => server.close());

function handshake(type: number, socketId: number, isn: number, cookie = 0, streamId?: string, latency = 120): Buffer {
  const sid = streamId === undefined ? Buffer.alloc(0) : encodeStreamId(streamId);
  const conclusion = type === HS_CONCLUSION;
  const b = Buffer.alloc(64 + (conclusion ? 16 + 4 + sid.length : 0));
  b.writeUInt32BE(0x80000000, 0);
  b.writeUInt32BE(conclusion ? 5 : 4, 16);
  b.writeUInt16BE(conclusion ? 5 : 2, 22);
  b.writeUInt32BE(isn, 24);
  b.writeUInt32BE(1500, 28);
  b.writeUInt32BE(8192, 32);
  b.writeUInt32BE(type >>> 0, 36);
  b.writeUInt32BE(socketId, 40);
  b.writeUInt32BE(cookie >>> 0, 44);
  if (conclusion) {
    b.writeUInt16BE(1, 64);
    b.writeUInt16BE(3, 66);
    b.writeUInt32BE(0x010500, 68);
    b.writeUInt32BE(0x3f, 72);
    b.writeUInt32BE(((latency << 16) | latency) >>> 0, 76);
    b.writeUInt16BE(5, 80);
    b.writeUInt16BE(sid.length / 4, 82);
    sid.copy(b, 84);
  }
  return b;
}

async function until(what: string, cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A caller that completes the handshake for `streamId`; `got` collects what the listener sends it. */
async function caller(streamId: string, latency = 120) {
  const s: Socket = createSocket("udp4");
  const got: Buffer[] = [];
  s.on("message", (m) => got.push(m));
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
  const socketId = randomInt(1, 0x3fffffff);
  const isn = randomInt(1, 0x7fffffff);
  s.send(handshake(HS_INDUCTION, socketId, isn), server.port, "127.0.0.1");
  await until("the induction answer", () => got.length > 0);
  const cookie = (got.shift() as Buffer).readUInt32BE(44);
  s.send(handshake(HS_CONCLUSION, socketId, isn, cookie, streamId, latency), server.port, "127.0.0.1");
  await until("the conclusion answer", () => got.length > 0);
  const answer = got.shift() as Buffer;
  assert.equal(answer.readUInt32BE(36), HS_CONCLUSION, "accepted");
  // HSRSP after the CIF: ours receiving << 16 | ours sending.
  const lat = answer.readUInt32BE(64 + 12);
  return { s, got, isn, serverId: answer.readUInt32BE(40), rcvLatency: lat >>> 16, sndLatency: lat & 0xffff };
}

test("a publisher whose bytes make the TS consumer throw loses its session, not the process", async () => {
  const c = await caller("publish:t/throws");
  assert.equal(server.sessions.size, 1);
  for (let i = 0; i < 3; i++) {
    const d = Buffer.alloc(16 + 188, 0x47);
    d.writeUInt32BE((c.isn + i) & 0x7fffffff, 0);
    d.writeUInt32BE((0xc0000000 | (i + 1)) >>> 0, 4);
    d.writeUInt32BE(i * 1000, 8);
    d.writeUInt32BE(c.serverId, 12);
    c.s.send(d, server.port, "127.0.0.1");
  }
  // Delivered after the latency (from the listener's timer): the consumer throws there.
  await until("the session to end", () => server.sessions.size === 0);
  assert.ok(pushes >= 1);
  await until("a shutdown to the caller", () => c.got.some((m) => m.readUInt32BE(0) >>> 16 === 0x8005));
  assert.equal(hub.get("t/throws"), undefined, "the path is free again");
  c.s.close();
  // The listener goes on: the next caller gets a session.
  const next = await caller("publish:t/next");
  assert.equal(server.sessions.size, 1);
  next.s.close();
});

test("a caller asking for 65 s of latency each way gets the cap: the listener holds packets that long at most", async () => {
  const c = await caller("publish:t/latency", 65535);
  assert.equal(c.rcvLatency, MAX_PEER_LATENCY_MS);
  assert.equal(c.sndLatency, MAX_PEER_LATENCY_MS);
  c.s.close();
  const d = await caller("publish:t/latency2", 500);
  assert.deepEqual([d.rcvLatency, d.sndLatency], [500, 500], "what a caller may ask for is kept");
  d.s.close();
});

test("a publisher's broken MPEG-TS is logged at most once a second, however many packets are broken", async () => {
  const lines: string[] = [];
  const logged = await SrtServer.start({
    host: "127.0.0.1",
    port: 0,
    hub,
    log: createLogger({ write: (l) => lines.push(l) }),
  });
  const saved = server;
  server = logged; // caller() talks to `server`
  let c: Awaited<ReturnType<typeof caller>> | undefined;
  try {
    c = await caller("publish:t/broken-ts");
    // 200 datagrams of 7 TS packets whose continuity counters jump on a PID the PMT never named, and on PID 0.
    for (let i = 0; i < 200; i++) {
      const d = Buffer.alloc(16 + 7 * 188);
      d.writeUInt32BE((c.isn + i) & 0x7fffffff, 0);
      d.writeUInt32BE((0xc0000000 | (i + 1)) >>> 0, 4);
      d.writeUInt32BE(i * 100, 8);
      d.writeUInt32BE(c.serverId, 12);
      for (let k = 0; k < 7; k++) {
        const o = 16 + k * 188;
        d[o] = 0x47;
        d[o + 1] = 0x80; // transport_error_indicator: reported by the demuxer
        d[o + 3] = 0x10 | ((i + k * 3) & 0x0f);
      }
      c.s.send(d, logged.port, "127.0.0.1");
    }
    await until("the TS errors to be reported", () => lines.some((l) => l.includes("MPEG-TS")));
    const conn = [...logged.sessions.values()][0]?.conn;
    await until("all 200 delivered", () => conn?.stats.packetsReceived === 200 && conn.buffered.rcv === 0);
    const ts = lines.filter((l) => l.includes("MPEG-TS"));
    assert.ok(ts.length <= 2, `${ts.length} lines for 1,400 broken packets`);
  } finally {
    c?.s.close();
    server = saved;
    await logged.close();
  }
});
