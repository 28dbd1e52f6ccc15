/** A few real nodes on UDP loopback, and a raw socket speaking KRPC at them the way a hostile peer would. */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createSocket, type Socket } from "node:dgram";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { encode } from "../bencode.ts";
import { Dht } from "./dht.ts";
import { randomId } from "./id.ts";
import { decodeMessage, encodeQuery, type Message } from "./krpc.ts";

const dir = mkdtempSync(join(tmpdir(), "dht-test-"));
const started: Dht[] = [];
after(async () => {
  await Promise.all(started.map((d) => d.stop()));
  rmSync(dir, { recursive: true, force: true });
});

async function node(o: ConstructorParameters<typeof Dht>[0] = {}): Promise<Dht> {
  const d = new Dht({ host: "127.0.0.1", queryTimeoutMs: 1000, ...o });
  await d.start();
  started.push(d);
  return d;
}
const entry = (d: Dht) => `127.0.0.1:${d.address?.port}`;

/** A raw UDP socket on `host` (any 127/8 address is loopback on Linux) that collects what it receives. */
async function raw(host = "127.0.0.1") {
  const sock: Socket = createSocket("udp4");
  await new Promise<void>((r) => sock.bind(0, host, r));
  const inbox: Message[] = [];
  let waiter: (() => void) | null = null;
  sock.on("message", (m) => {
    const x = decodeMessage(m);
    if (x.y !== "bad") inbox.push(x);
    waiter?.();
  });
  return {
    port: sock.address().port,
    send: (b: Buffer, to: Dht) => sock.send(b, to.address?.port as number, "127.0.0.1"),
    async next(ms = 2000): Promise<Message | undefined> {
      const end = Date.now() + ms;
      while (!inbox.length && Date.now() < end)
        await new Promise<void>((r) => {
          waiter = r;
          setTimeout(r, 50);
        });
      return inbox.shift();
    },
    inbox,
    close: () => sock.close(),
  };
}

test("three nodes on UDP: an announce through one is found by a lookup from another", async () => {
  const a = await node();
  const b = await node({ bootstrap: [entry(a)] });
  const c = await node({ bootstrap: [entry(a)] });
  assert.ok((await b.bootstrap()) >= 1);
  assert.ok((await c.bootstrap()) >= 1);
  const ih = randomId();
  assert.ok((await c.announceCount(ih, 7000)) >= 1, "at least one node accepted the announce");
  const found = [];
  for await (const p of b.lookup(ih)) found.push(p);
  assert.deepEqual(found, [{ host: "127.0.0.1", port: 7000 }]);
  const s = b.stats();
  assert.ok(s.tx > 0 && s.rx > 0 && s.lookups >= 2 && s.tableSize >= 2, JSON.stringify(s));
  assert.ok(a.stats().queriesIn.announce_peer >= 1 || b.stats().queriesIn.announce_peer >= 1);
  assert.ok(
    b.nodes().some((n) => n.port === a.address?.port && n.state === "good"),
    "a answered b: good",
  );
  // c only ever queried a: a keeps it, questionable until it answers a query of a's (BEP 5).
  assert.ok(a.nodes().some((n) => n.port === c.address?.port && n.state === "questionable"));
});

test("announce_peer needs the token get_peers gave to that IP; implied_port uses the UDP source port", async () => {
  const a = await node();
  const me = await raw();
  const other = await raw("127.0.0.2");
  const id = randomId();
  const ih = randomId();
  me.send(encodeQuery(Buffer.from("g1"), "get_peers", { id, info_hash: ih }), a);
  const gp = await me.next();
  assert.ok(gp?.y === "r" && Buffer.isBuffer(gp.r.token), "get_peers answers with a token");
  const token = gp.r.token as Buffer;

  const announce = (t: string, tok: Buffer, extra = {}) =>
    encodeQuery(Buffer.from(t), "announce_peer", { id, info_hash: ih, port: 7001, token: tok, ...extra });
  me.send(announce("a1", Buffer.from("forged-token")), a);
  const bad = await me.next();
  assert.ok(bad?.y === "e" && bad.code === 203, `bad token refused: ${JSON.stringify(bad)}`);
  other.send(announce("a2", token), a);
  const stolen = await other.next();
  assert.ok(stolen?.y === "e" && stolen.code === 203, "a token from another IP is refused");
  assert.deepEqual(a.peers.get(ih), []);
  assert.equal(a.stats().badTokens, 2);

  me.send(announce("a3", token), a);
  assert.equal((await me.next())?.y, "r");
  me.send(announce("a4", token, { implied_port: 1 }), a);
  assert.equal((await me.next())?.y, "r");
  assert.deepEqual(
    a.peers
      .get(ih)
      .map((p) => p.port)
      .sort(),
    [7001, me.port].sort(),
  );
  me.send(encodeQuery(Buffer.from("g2"), "get_peers", { id, info_hash: ih }), a);
  const values = await me.next();
  assert.ok(values?.y === "r" && Array.isArray(values.r.values) && values.r.values.length === 2);
  me.close();
  other.close();
});

test("hostile input: garbage, oversized and ill-typed datagrams get 203/204 or silence; a flood is rate-limited", async () => {
  const a = await node({ rateLimit: { perSecond: 5, burst: 20 } });
  const me = await raw();
  const t = Buffer.from("zz");
  const junk = [
    Buffer.from("not bencode at all"),
    randomBytes(600),
    Buffer.alloc(5000, 0x64), // oversized: dropped before parsing
    encode([1, 2, 3]),
    encode({ t, y: "q", q: "ping", a: { id: 12 } }),
    encode({ t, y: "q", q: "find_node", a: { id: randomId(), target: [1] } }),
    encode({ t, y: "q", q: "sample_infohashes", a: { id: randomId() } }),
    encode({ t, y: "r", r: { id: randomId() } }), // an answer to nothing
  ];
  for (const j of junk) me.send(j, a);
  const replies: Message[] = [];
  for (let m = await me.next(1000); m; m = await me.next(300)) replies.push(m);
  assert.deepEqual(
    replies.map((r) => (r.y === "e" ? r.code : r.y)),
    [203, 203, 204],
    "errors only to dictionaries with a t",
  );
  assert.ok(a.stats().malformed >= 6);

  const flooder = await raw("127.0.0.3");
  for (let i = 0; i < 500; i++) flooder.send(encodeQuery(Buffer.from("f1"), "ping", { id: randomId() }), a);
  await new Promise((r) => setTimeout(r, 500));
  assert.ok(flooder.inbox.length <= 25, `${flooder.inbox.length} answers to a 500-ping flood`);
  assert.ok(a.stats().rateLimited >= 470);
  me.send(encodeQuery(Buffer.from("p1"), "ping", { id: randomId() }), a);
  assert.equal((await me.next())?.y, "r", "other IPs are still answered");
  assert.ok(a.table.size <= 160 * 8);
  me.close();
  flooder.close();
});

test("the routing table and node id survive a restart (stateDir/dht.json); a corrupt file is ignored", async () => {
  const a = await node();
  const stateDir = join(dir, "state");
  const b = await node({ bootstrap: [entry(a)], stateDir });
  await b.bootstrap();
  const id = b.id.toString("hex");
  await b.stop();
  const saved = JSON.parse(readFileSync(join(stateDir, "dht.json"), "utf8"));
  assert.equal(saved.id, id);
  assert.ok(saved.nodes.some((n: { port: number }) => n.port === a.address?.port));
  const b2 = await node({ stateDir }); // no bootstrap: only what was saved
  assert.equal(b2.id.toString("hex"), id);
  assert.ok(b2.nodes().some((n) => n.port === a.address?.port));
  assert.ok((await b2.bootstrap()) >= 1);
  await b2.stop();
  await b2.start(); // the same object again: walks must not inherit the old stop's abort
  const rx = b2.stats().rx;
  await b2.bootstrap();
  assert.ok(b2.stats().rx > rx, "the restarted node's walk really queried");
  await b2.stop();
  writeFileSync(join(stateDir, "dht.json"), "{ not json");
  const b3 = await node({ stateDir });
  assert.notEqual(b3.id.toString("hex"), id);
  assert.equal(b3.stats().tableSize, 0);
});

test("read_only (BEP 43): the node queries but never answers, and others keep it out of their tables", async () => {
  const a = await node();
  const ro = await node({ bootstrap: [entry(a)], readOnly: true });
  assert.ok((await ro.bootstrap()) >= 1, "a read-only node still learns the network");
  assert.ok(!a.nodes().some((n) => n.port === ro.address?.port), "a did not add the read-only node");
  const me = await raw();
  me.send(encodeQuery(Buffer.from("r1"), "ping", { id: randomId() }), ro);
  assert.equal(await me.next(500), undefined, "no answer from a read-only node");
  me.close();
  await assert.rejects(async () => {
    for await (const _ of a.lookup(Buffer.alloc(3))) break;
  }, /infohash/);
});

test("lookup on a stopped node fails with AMI_NOT_RUNNING (no unhandled rejection); breaking early stops the walk", async () => {
  const idle = new Dht({ host: "127.0.0.1" });
  await assert.rejects(async () => {
    for await (const _ of idle.lookup(randomId())) break;
  }, /not started/);
  const a = await node();
  const b = await node({ bootstrap: [entry(a)] });
  await b.bootstrap();
  const ih = randomId();
  a.peers.add(ih, { host: "10.9.9.9", port: 9 });
  a.peers.add(ih, { host: "10.9.9.8", port: 8 });
  const got = [];
  for await (const p of b.lookup(ih)) {
    got.push(p);
    break;
  }
  assert.equal(got.length, 1);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(b.stats().lookupsActive, 0, "the walk ended with the loop");
});

test("a query that makes our handler throw gets 202 (Server Error) and the node keeps answering", async () => {
  const a = await node();
  const me = await raw();
  const orig = a.peers.get.bind(a.peers);
  a.peers.get = () => {
    throw new Error("simulated bug");
  };
  me.send(encodeQuery(Buffer.from("s1"), "get_peers", { id: randomId(), info_hash: randomId() }), a);
  const e = await me.next();
  assert.ok(e?.y === "e" && e.code === 202, JSON.stringify(e));
  a.peers.get = orig;
  me.send(encodeQuery(Buffer.from("s2"), "ping", { id: randomId() }), a);
  assert.equal((await me.next())?.y, "r");
  me.close();
});
