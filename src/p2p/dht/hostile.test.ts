/**
 * What one hostile address can make a node spend or send: get_peers answers stay within a find_node answer's size
 * (a spoofed query must not buy a big reflection), one IP cannot fill the routing table with ids or the peer store
 * with infohashes.
 */
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { networkInterfaces } from "node:os";
import { test } from "node:test";
import { Dht } from "./dht.ts";
import { randomId } from "./id.ts";
import { decodeMessage, encodeQuery, type Query } from "./krpc.ts";
import { isLocalHost } from "./local.ts";
import { iterativeLookup } from "./lookup.ts";
import { PeerStore } from "./peers.ts";
import { RoutingTable } from "./routing.ts";
import { handleQuery } from "./server.ts";
import { TokenSecrets } from "./tokens.ts";

test("a get_peers answer for a crowded infohash is no bigger than a find_node answer (≤ 3.5× the query)", () => {
  const id = randomId();
  const table = new RoutingTable(id);
  for (let i = 0; i < 400; i++) table.add({ id: randomId(), host: `10.0.${i >> 8}.${i & 255}`, port: 6881 }, true);
  const peers = new PeerStore({ perIp: 1000 });
  const ih = randomId();
  for (let i = 0; i < 100; i++) peers.add(ih, { host: `10.1.0.${i}`, port: 5000 + i });
  const ctx = { id, table, peers, tokens: new TokenSecrets() };
  const from = { host: "192.0.2.7", port: 1 };
  const q = encodeQuery(Buffer.from("aa"), "get_peers", { id: randomId(), info_hash: ih });
  const fq = encodeQuery(Buffer.from("aa"), "find_node", { id: randomId(), target: ih });
  const answer = handleQuery(ctx, decodeMessage(q) as Query, from).msg;
  const findAnswer = handleQuery(ctx, decodeMessage(fq) as Query, from).msg;
  assert.ok(answer.length <= q.length * 3.5, `get_peers: ${answer.length} bytes for a ${q.length}-byte query`);
  assert.ok(answer.length <= findAnswer.length + 20, `get_peers ${answer.length} vs find_node ${findAnswer.length}`);
  assert.ok(answer.includes(Buffer.from("6:values")), "peers are still handed out");
});

test("one IP holds at most a couple of routing-table slots, whatever ids it claims (loopback is exempt)", () => {
  const t = new RoutingTable(randomId(), Date.now, { perIp: 2 });
  for (let i = 0; i < 200; i++) t.add({ id: randomId(), host: "198.51.100.9", port: 1000 + i }, i % 2 === 0);
  assert.equal(t.all().filter((n) => n.host === "198.51.100.9").length, 2);
  const local = new RoutingTable(randomId(), Date.now, { perIp: 2 });
  for (let i = 0; i < 20; i++) local.add({ id: randomId(), host: "127.0.0.1", port: 2000 + i }, true);
  assert.ok(local.size >= 8, `${local.size} loopback nodes`);
  for (let i = 0; i < 20; i++) t.add({ id: randomId(), host: `203.0.113.${i}`, port: 6881 }, true);
  assert.ok(t.all().filter((n) => n.host.startsWith("203.0.113.")).length >= 8, "other IPs still get in");
});

test("one IP announcing to thousands of infohashes cannot flush the others' peers from the store", () => {
  const ps = new PeerStore({ maxHashes: 100, perIp: 16 });
  const kept = randomId();
  ps.add(kept, { host: "203.0.113.1", port: 6881 });
  for (let i = 0; i < 5000; i++) ps.add(randomId(), { host: "198.51.100.9", port: 6881 });
  assert.deepEqual(ps.get(kept), [{ host: "203.0.113.1", port: 6881 }]);
  assert.ok(ps.stats.infohashes <= 17, `${ps.stats.infohashes} infohashes`);
  // The flooder's own newest announces are the ones kept; its count is given back as entries go.
  const t0 = { now: 0 };
  const short = new PeerStore({ perIp: 2, ttlMs: 10, now: () => t0.now });
  short.add(randomId(), { host: "198.51.100.9", port: 1 });
  short.add(randomId(), { host: "198.51.100.9", port: 1 });
  t0.now = 20;
  short.sweep();
  const later = randomId();
  short.add(later, { host: "198.51.100.9", port: 1 });
  assert.equal(short.get(later).length, 1);
});

test("a lookup asks at most two nodes at one (non-loopback) IP, whatever a liar's answer names", async () => {
  const target = randomId();
  const asked: string[] = [];
  const victim = "192.0.2.53";
  const seedId = randomId();
  await iterativeLookup({
    target,
    selfId: randomId(),
    k: 8,
    seeds: [{ id: seedId, host: "203.0.113.1", port: 6881 }],
    ask: async (to) => {
      asked.push(to.host);
      // The seed names 30 "nodes" very close to the target, all at the victim's address.
      if (to.host !== "203.0.113.1") return null;
      const nodes = Array.from({ length: 30 }, (_, i) => {
        const id = Buffer.from(target);
        id[19] ^= i + 1;
        return { id, host: victim, port: 1000 + i };
      });
      return { id: seedId, nodes, values: [] };
    },
  });
  assert.ok(
    asked.filter((h) => h === victim).length <= 2,
    `${asked.filter((h) => h === victim).length} queries to one IP`,
  );
});

test("this machine's own address is exempt from the per-IP limits on UDP, as loopback is", async () => {
  const own = Object.values(networkInterfaces())
    .flat()
    .find((a) => a?.family === "IPv4" && !a.internal)?.address;
  assert.equal(isLocalHost("127.0.0.5"), true);
  assert.equal(isLocalHost("198.51.100.9"), false);
  if (!own) return; // only loopback here: nothing more to check
  assert.equal(isLocalHost(own), true);
  const t = new RoutingTable(randomId(), Date.now, { perIp: 2, exempt: isLocalHost });
  for (let i = 0; i < 20; i++) t.add({ id: randomId(), host: own, port: 2000 + i }, true);
  assert.ok(t.size >= 8, `${t.size} nodes at ${own}`);
  const asked: string[] = [];
  const seedId = randomId();
  await iterativeLookup({
    target: randomId(),
    selfId: randomId(),
    k: 8,
    exempt: isLocalHost,
    seeds: [{ id: seedId, host: own, port: 6881 }],
    ask: async (to) => {
      asked.push(to.host);
      if (to.port !== 6881) return null;
      const nodes = Array.from({ length: 10 }, (_, i) => ({ id: randomId(), host: own, port: 1000 + i }));
      return { id: seedId, nodes, values: [] };
    },
  });
  assert.equal(asked.length, 11, "the walk asked every node at this machine's address");
  // A Dht on UDP exempts it (one on the in-memory network of the simulation only exempts loopback).
  const d = new Dht({ host: "127.0.0.1", nodesPerIp: 2 });
  for (let i = 0; i < 20; i++) d.table.add({ id: randomId(), host: own, port: 3000 + i }, true);
  assert.ok(d.table.size >= 8);
});

test("real UDP: no answer is more than 4× the datagram that asked for it (tiny junk gets silence)", async () => {
  const d = new Dht({ host: "127.0.0.1" });
  await d.start();
  const sock = createSocket("udp4");
  await new Promise<void>((r) => sock.bind(0, "127.0.0.1", r));
  const got: Buffer[] = [];
  sock.on("message", (m) => got.push(m));
  const port = d.address?.port as number;
  const sent = [
    Buffer.from("d1:t1:ae"), // a dictionary with only a transaction id: 8 bytes
    Buffer.from("d1:t1:b1:y1:qe"), // 14 bytes: its ~45-byte 203 stays within 4×
    Buffer.from(`d1:ad2:id20:${"x".repeat(20)}e1:q3:xyz1:t2:aa1:y1:qe`), // an unknown method, as a real query
  ];
  for (const b of sent) sock.send(b, port, "127.0.0.1");
  await new Promise((r) => setTimeout(r, 500));
  sock.close();
  await d.stop();
  assert.ok(
    got.every((m) => m.length <= 4 * sent[2].length),
    `answers of ${got.map((m) => m.length)} bytes`,
  );
  assert.ok(!got.some((m) => m.includes(Buffer.from("1:t1:a"))), "8 bytes bought an error");
  assert.equal(got.length, 2, "the 14-byte junk gets its 203, the unknown method its 204");
});
