/**
 * RtspConn against hostile peers, on a real RTSP listener and hub with raw TCP clients: a UDP reader naming
 * port 0, a peer that pipelines requests and never reads the answers, a TCP reader that stops reading.
 */
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { after, before, test } from "node:test";
import { silentLogger } from "../../../core/logger.ts";
import { rtspSchema } from "../../config.ts";
import { Hub, type MediaStream } from "../../hub.ts";
import { avcConfigFrame, avcConfigRecord, avcNaluFrame } from "../../protocols/webrtc/avc-tags.ts";
import { RtspServer } from "./server.ts";

const udpBase = 41000 + Math.floor(Math.random() * 100) * 20;
const hub = new Hub({ readerQueue: 64, gopCache: 64 });
/** idle: a 1 s idle timeout; patient: 60 s (a peer may stop reading for a while). */
let idle: RtspServer;
let patient: RtspServer;

const start = (idleTimeoutSeconds: number, udpPortMin: number) => {
  const config = rtspSchema.parse({ port: 0, udpPortMin, udpPortMax: udpPortMin + 9, idleTimeoutSeconds });
  const udp = RtspServer.udpPorts("127.0.0.1", config);
  return RtspServer.start({ host: "127.0.0.1", port: 0, hub, log: silentLogger, config, udp });
};

before(async () => {
  idle = await start(1, udpBase);
  patient = await start(60, udpBase + 10);
});

after(async () => {
  await idle.close();
  await patient.close();
});

async function until(what: string, cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A raw RTSP client: send a request, read its answer (status and headers). */
class Client {
  readonly sock: Socket;
  #buf = "";
  readonly url: string;
  readonly server: RtspServer;
  constructor(server: RtspServer, localAddress?: string) {
    this.server = server;
    this.sock = connect({ port: server.port, host: "127.0.0.1", localAddress });
    this.url = `rtsp://127.0.0.1:${server.port}`;
    this.sock.setEncoding("latin1");
    this.sock.on("data", (d: string) => {
      this.#buf += d;
    });
    this.sock.on("error", () => {});
  }
  async request(method: string, url: string, headers: Record<string, string> = {}, body = "") {
    const all = body ? { ...headers, "Content-Length": String(body.length) } : headers;
    const head = Object.entries(all).map(([k, v]) => `${k}: ${v}\r\n`);
    this.#buf = "";
    this.sock.write(`${method} ${url} RTSP/1.0\r\nCSeq: 1\r\n${head.join("")}\r\n${body}`);
    await until(`${method} answer`, () => this.#buf.includes("\r\n\r\n"));
    const lines = (this.#buf.split("\r\n\r\n")[0] as string).split("\r\n");
    const h = new Map(
      lines.slice(1).map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]),
    );
    return { status: Number(lines[0]?.split(" ")[1]), headers: h };
  }
}

const sps = Buffer.from([0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x47, 0xfe, 0xc8]);
const pps = Buffer.from([0x68, 0xce, 0x3c, 0x80]);

function publish(path: string): MediaStream {
  const s = hub.publish(path, { protocol: "test", remote: "test", since: Date.now() });
  s.write(avcConfigFrame(0, avcConfigRecord(sps, pps)));
  s.write(avcNaluFrame(0, [Buffer.concat([Buffer.from([0x65]), Buffer.alloc(1000)])], true));
  return s;
}

const connOf = (c: Client) => [...c.server.conns].find((x) => x.remote.endsWith(`:${c.sock.localPort}`));

test("a UDP reader naming port 0 for RTP or RTCP gets 461 (sending there would throw in a timer)", async () => {
  const s = publish("t/udp0");
  const c = new Client(idle);
  const url = `${c.url}/t/udp0`;
  assert.equal((await c.request("DESCRIBE", url)).status, 200);
  for (const ports of ["5000-0", "0-1", "0"]) {
    const r = await c.request("SETUP", `${url}/trackID=0`, { Transport: `RTP/AVP;unicast;client_port=${ports}` });
    assert.equal(r.status, 461, `client_port=${ports}`);
  }
  // The connection is still served.
  assert.equal((await c.request("OPTIONS", "*")).status, 200);
  c.sock.destroy();
  s.end();
});

test("a peer that pipelines requests and never reads the answers is not read further; it is served once it reads", async () => {
  const s = publish("t/pipe");
  const c = new Client(patient);
  const url = `${c.url}/t/pipe`;
  assert.equal((await c.request("DESCRIBE", url)).status, 200);
  const setup = await c.request("SETUP", `${url}/trackID=0`, { Transport: "RTP/AVP/TCP;unicast;interleaved=0-1" });
  assert.equal(setup.status, 200);
  const session = setup.headers.get("session")?.split(";")[0] as string;
  assert.equal((await c.request("PLAY", url, { Session: session })).status, 200);
  const conn = connOf(c);
  assert.ok(conn);
  c.sock.pause(); // reads nothing from now on
  const req = Buffer.from("GET_PARAMETER * RTSP/1.0\r\nCSeq: 2\r\n\r\n");
  const burst = Buffer.concat(Array.from({ length: 2000 }, () => req));
  let sent = 0;
  // 40 MB of requests (each answer is longer than its request): without backpressure the answers pile up unsent.
  while (sent < 40 * 1024 * 1024 && !conn.socket.isPaused() && conn.socket.writableLength < 32 * 1024 * 1024) {
    if (!c.sock.write(burst)) await new Promise((r) => setTimeout(r, 5));
    sent += burst.length;
  }
  await until(
    "the server to stop reading",
    () => conn.socket.isPaused() || conn.socket.writableLength >= 32 * 1024 * 1024,
  );
  assert.ok(conn.socket.isPaused(), "reading stopped");
  assert.ok(conn.socket.writableLength < 8 * 1024 * 1024, `unsent ${conn.socket.writableLength} bytes`);
  // The peer reads again: every request it sent is answered, on the same connection.
  const asked = sent / req.length;
  let answered = 0;
  let tail = "";
  c.sock.removeAllListeners("data");
  c.sock.on("data", (d: string) => {
    const t = tail + d;
    answered += t.split("\r\nCSeq: 2\r\n").length - 1;
    tail = t.slice(-10); // shorter than the 11-character marker: nothing is counted twice
  });
  c.sock.resume();
  await until(`${asked} answers`, () => answered >= asked, 60_000);
  assert.equal(answered, asked);
  assert.ok(patient.conns.has(conn));
  c.sock.destroy();
  s.end();
});

test("a TCP reader that stops reading is closed after the idle timeout although it is written to", async () => {
  const s = publish("t/stuck");
  const c = new Client(idle);
  const url = `${c.url}/t/stuck`;
  assert.equal((await c.request("DESCRIBE", url)).status, 200);
  const setup = await c.request("SETUP", `${url}/trackID=0`, { Transport: "RTP/AVP/TCP;unicast;interleaved=0-1" });
  const session = setup.headers.get("session")?.split(";")[0] as string;
  assert.equal((await c.request("PLAY", url, { Session: session })).status, 200);
  const conn = connOf(c);
  assert.ok(conn);
  c.sock.pause();
  let dts = 40;
  const idr = Buffer.concat([Buffer.from([0x65]), Buffer.alloc(200_000)]);
  const feed = setInterval(() => {
    s.write(avcNaluFrame(dts, [idr], true));
    dts += 40;
  }, 20);
  try {
    await until("the stuck reader to be closed", () => !idle.conns.has(conn));
  } finally {
    clearInterval(feed);
  }
  c.sock.destroy();
  s.end();
});

test("waiting for a TCP reader's socket to drain leaves no listener behind, however often it waits", async () => {
  const { createServer } = await import("node:net");
  const { drainedOrClosed } = await import("./conn.ts");
  const peer = createServer((s) => s.resume());
  await new Promise<void>((r) => peer.listen(0, "127.0.0.1", () => r()));
  const sock = connect((peer.address() as { port: number }).port, "127.0.0.1");
  await new Promise((r) => sock.once("connect", r));
  const base = { drain: sock.listenerCount("drain"), close: sock.listenerCount("close") };
  const chunk = Buffer.alloc(256 * 1024);
  for (let i = 0; i < 50; i++) {
    while (sock.write(chunk)) {}
    await drainedOrClosed(sock);
  }
  assert.equal(sock.listenerCount("close"), base.close);
  assert.equal(sock.listenerCount("drain"), base.drain);
  sock.destroy();
  peer.close();
});

/** A UDP socket on 127.0.0.1 (port 0: any). */
async function udpSocket(port = 0) {
  const { createSocket } = await import("node:dgram");
  const u = createSocket("udp4");
  await new Promise<void>((r) => u.bind(port, "127.0.0.1", () => r()));
  return u;
}

/** An RTSP publisher of one Opus track over UDP from `rtp` (and the next port for RTCP): the server's RTP port. */
async function udpOpusPublisher(c: Client, path: string, rtpPort: number): Promise<number> {
  const url = `${c.url}/${path}`;
  const sdp = "v=0\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\na=control:trackID=0\r\n";
  assert.equal((await c.request("ANNOUNCE", url, { "Content-Type": "application/sdp" }, sdp)).status, 200);
  const setup = await c.request("SETUP", `${url}/trackID=0`, {
    Transport: `RTP/AVP;unicast;client_port=${rtpPort}-${rtpPort + 1};mode=record`,
  });
  assert.equal(setup.status, 200);
  const session = setup.headers.get("session")?.split(";")[0] as string;
  const server = Number(/server_port=(\d+)/.exec(setup.headers.get("transport") ?? "")?.[1]);
  assert.equal((await c.request("RECORD", url, { Session: session })).status, 200);
  return server;
}

test("RTP over UDP is taken only from the port the client named (or its first packet's, behind a NAT)", async () => {
  const { buildRtp } = await import("../../protocols/rtp/packet.ts");
  const opus = (seq: number, from: { send: (b: Buffer, port: number, host: string) => void }, port: number) =>
    from.send(
      buildRtp({
        payloadType: 111,
        marker: false,
        sequenceNumber: seq,
        timestamp: seq * 960,
        ssrc: 7,
        payload: Buffer.from([0xfc, seq & 0xff]),
      }),
      port,
      "127.0.0.1",
    );
  const frames = (path: string) => {
    const got: number[] = [];
    const s = hub.get(path);
    assert.ok(s);
    s.on("frame", (f) => {
      if (!f.config) got.push(f.data.at(-1) as number);
    });
    return got;
  };

  const [own, other, nat] = [await udpSocket(), await udpSocket(), await udpSocket()];
  const c = new Client(patient);
  const c2 = new Client(patient);
  try {
    // Declared ports: packets from them count; the same address from another port is dropped.
    const ownPort = (own.address() as { port: number }).port;
    const server = await udpOpusPublisher(c, "t/udp-lock", ownPort);
    const got = frames("t/udp-lock");
    for (let i = 1; i <= 5; i++) opus(i, own, server);
    await until("the publisher's packets", () => got.length >= 5);
    for (let i = 100; i < 110; i++) opus(i, other, server);
    for (let i = 6; i <= 8; i++) opus(i, own, server);
    await until("the publisher's later packets", () => got.includes(8));
    assert.deepEqual(got, [1, 2, 3, 4, 5, 6, 7, 8], "nothing injected from another port");

    // Behind a NAT (the declared port is not where packets come from): the first packet's port is locked.
    const server2 = await udpOpusPublisher(c2, "t/udp-nat", 9); // a port the client never sends from
    const got2 = frames("t/udp-nat");
    for (let i = 1; i <= 3; i++) opus(i, nat, server2);
    await until("the NATed publisher's packets", () => got2.length >= 3);
    for (let i = 100; i < 110; i++) opus(i, other, server2);
    opus(4, nat, server2);
    await until("the NATed publisher's later packet", () => got2.includes(4));
    assert.deepEqual(got2, [1, 2, 3, 4]);
  } finally {
    c.sock.destroy();
    c2.sock.destroy();
    for (const u of [own, other, nat]) u.close();
  }
});

test("one client address holding every UDP pair cannot keep others from UDP: the pool is shared out fairly", async () => {
  const config = rtspSchema.parse({ port: 0, udpPortMin: udpBase + 40, udpPortMax: udpBase + 47 }); // 4 pairs
  const udp = RtspServer.udpPorts("127.0.0.1", config);
  assert.ok(udp);
  const server = await RtspServer.start({ host: "127.0.0.1", port: 0, hub, log: silentLogger, config, udp });
  const s = publish("t/fair");
  const clients: Client[] = [];
  /** A UDP reader set up (not playing) from `ip`: the SETUP status. */
  const setupFrom = async (ip: string) => {
    const c = new Client(server, ip);
    clients.push(c);
    const url = `${c.url}/t/fair`;
    assert.equal((await c.request("DESCRIBE", url)).status, 200);
    const r = await c.request("SETUP", `${url}/trackID=0`, { Transport: "RTP/AVP;unicast;client_port=6000-6001" });
    return { c, status: r.status, session: r.headers.get("session")?.split(";")[0] as string, reason: r.headers };
  };
  try {
    // The hostile address takes the whole pool (nobody else wants it) and is then told to use TCP.
    for (let i = 0; i < 4; i++) assert.equal((await setupFrom("127.0.0.2")).status, 200);
    assert.equal(udp.heldBy("127.0.0.2"), 4);
    const over = await setupFrom("127.0.0.2");
    assert.equal(over.status, 461, "full pool, own share held: 461 (retry over TCP)");
    // Another address still gets a pair: the hostile's newest session gives one back, its connection closes.
    const honest = await setupFrom("127.0.0.3");
    assert.equal(honest.status, 200);
    assert.equal(udp.heldBy("127.0.0.2"), 3);
    assert.equal(udp.reclaimed, 1);
    assert.equal((await honest.c.request("PLAY", `${honest.c.url}/t/fair`, { Session: honest.session })).status, 200);
    // The hostile cannot take it back, nor hold more than the others end with.
    assert.equal((await setupFrom("127.0.0.2")).status, 461);
    assert.equal((await setupFrom("127.0.0.4")).status, 200);
    assert.equal((await setupFrom("127.0.0.5")).status, 200);
    assert.deepEqual(
      ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"].map((a) => udp.heldBy(a)),
      [1, 1, 1, 1],
      "one pair each",
    );
    // Everyone has its share now: a fifth address is sent to TCP rather than taking one.
    assert.equal((await setupFrom("127.0.0.6")).status, 461);
    assert.equal((await setupFrom("127.0.0.6")).status, 461);
    // The honest reader kept playing throughout.
    assert.ok(server.conns.size >= 4);
    assert.equal([...server.conns].filter((c) => c.role === "reader").length, 1);
  } finally {
    for (const c of clients) c.sock.destroy();
    s.end();
    await server.close();
  }
});

test("UDP fairness counts an IPv6 client by its /64 and an IPv4-mapped one as IPv4", async () => {
  const { addressKey } = await import("./udp.ts");
  assert.equal(addressKey("::ffff:10.1.2.3"), "10.1.2.3");
  assert.equal(addressKey("2001:db8:1:2:3:4:5:6"), addressKey("2001:db8:1:2::9"));
  assert.notEqual(addressKey("2001:db8:1:2::9"), addressKey("2001:db8:1:3::9"));
});
