/**
 * The DHT as the service's peer source, over UDP on loopback: announces are throttled per infohash (the swarm's
 * discovery round runs every 30 s; nodes keep an announce 30 min), a peer's PORT message puts its node in our
 * table, and `--bootstrap` refuses what would make it useless as an entry point.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { configSchema } from "../config.ts";
import { silentLogger } from "../core/logger.ts";
import { Dht } from "./dht/dht.ts";
import { DhtSource, dhtFor } from "./dht-source.ts";

test("each infohash is announced once per period; a PORT message adds the peer's node; lookups find the announce", async () => {
  const boot = new Dht({ host: "127.0.0.1" });
  const lone = new Dht({ host: "127.0.0.1" });
  await boot.start();
  const a = new DhtSource(new Dht({ host: "127.0.0.1", bootstrap: [`127.0.0.1:${boot.address?.port}`] }), 60_000);
  try {
    await a.dht.start();
    await lone.start();
    const ih = randomBytes(20);
    await a.announce(ih, 5555);
    await a.announce(ih, 5555);
    await a.announce(ih, 5555);
    assert.equal(a.dht.stats().announces, 1, "one walk + announce_peer round per period");
    assert.equal(boot.peers.get(ih).length, 1);
    a.forget(ih);
    await a.announce(ih, 5555);
    assert.equal(a.dht.stats().announces, 2, "forget() lets the next round announce at once");

    // `lone` has no bootstrap node and an empty table; a peer's PORT message names a's DHT.
    assert.equal(lone.table.size, 0);
    const viaLone = new DhtSource(lone, 60_000);
    viaLone.heardPort({ host: "::ffff:127.0.0.1", port: a.dht.address?.port ?? 0 });
    for (let i = 0; i < 50 && lone.table.size === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(lone.table.size, 1, "the node that answered our ping is in the table");
    assert.equal(lone.nodes()[0].port, a.dht.address?.port);

    // Through that one node, lone now finds the announce (lookups pass through while nothing was found).
    const found: number[] = [];
    for await (const p of viaLone.lookup(ih, AbortSignal.timeout(5000))) found.push(p.port);
    assert.deepEqual(found, [5555]);
    // Found once: the next round does not walk again for a while.
    const walks = lone.stats().lookups;
    for await (const _ of viaLone.lookup(ih)) assert.fail("no second walk yet");
    assert.equal(lone.stats().lookups, walks);
  } finally {
    await a.dht.stop();
    await lone.stop();
    await boot.stop();
  }
});

test("read-only nodes do not announce; --bootstrap needs a fixed port and a node that answers", async () => {
  const ro = new DhtSource(new Dht({ host: "127.0.0.1", readOnly: true }), 60_000);
  await ro.dht.start();
  try {
    await ro.announce(randomBytes(20), 1234);
    assert.equal(ro.dht.stats().announces, 0);
  } finally {
    await ro.dht.stop();
  }
  const cfg = (p2p: object) => configSchema.parse({ p2p });
  const o = { stateDir: "/nonexistent", log: silentLogger, bootstrap: true };
  assert.throws(() => dhtFor(cfg({ port: 0 }), o), { code: "AMI_INVALID_CONFIG", message: /fixed DHT port/ });
  assert.throws(() => dhtFor(cfg({ dht: { readOnly: true } }), o), { code: "AMI_INVALID_CONFIG" });
  const d = dhtFor(cfg({ port: 0, dht: { port: 7000, reannounceMinutes: 15 } }), o);
  assert.equal(d.dht.o.port, 7000);
  assert.equal(d.reannounceMs, 15 * 60_000);
  assert.equal(dhtFor(cfg({ port: 6999 }), { ...o, bootstrap: false }).dht.o.port, 6999, "null: the peer port");
  assert.equal(dhtFor(cfg({ host: "::" }), o).dht.o.host, "0.0.0.0", "IPv4 DHT beside an IPv6 listener");
});
