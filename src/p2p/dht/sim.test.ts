/**
 * 1,000 real Dht nodes in one process over the in-memory transport (MemoryNetwork: one IPv4 address per node, async
 * delivery; UDP sockets would measure 1,000 sockets on 2 cores, the bench has a UDP run). Lookups must all find
 * the announced peer with a median hop count ≤ log2(n) + 2, and still find it after 30 % of the nodes die.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Dht } from "./dht.ts";
import { announceAll, buildSim, lookupAll, median } from "./sim.ts";

const N = 1000;

test(`${N}-node simulation: 100 % of lookups succeed, median hops ≤ log2(n)+2, and survive 30 % churn`, async () => {
  const sim = await buildSim(N);
  try {
    const sizes = sim.nodes.map((d) => d.table.size);
    assert.ok(median(sizes) >= 30, `routing tables filled (median ${median(sizes)} nodes)`);
    const announced = await announceAll(sim, 40);
    assert.ok(
      announced.every((a) => a.acks >= 3),
      `announces stored on the closest nodes (acks ${announced.map((a) => a.acks)})`,
    );
    const targets = [...announced, ...announced, ...announced.slice(0, 20)]; // 100 lookups from random nodes
    const before = await lookupAll(sim, targets);
    const bound = Math.log2(N) + 2;
    assert.equal(before.ok, before.total, `${before.ok}/${before.total} lookups found the peer`);
    assert.ok(median(before.hops) <= bound, `median hops ${median(before.hops)} > ${bound}`);

    const dead = new Set<Dht>();
    for (const d of [...sim.nodes].sort(() => Math.random() - 0.5).slice(0, Math.round(N * 0.3))) dead.add(d);
    await Promise.all([...dead].map((d) => d.stop()));
    const live = (d: Dht) => !dead.has(d);
    // An announce survives when one node holding it survives (the announcer itself may be dead: its peer entry
    // lives on the 8 nodes closest to the infohash).
    const held = announced.filter((a) => sim.nodes.some((d) => live(d) && d.peers.get(a.infohash).length > 0));
    assert.ok(held.length >= announced.length - 1, `${held.length}/${announced.length} infohashes still held`);
    const afterChurn = await lookupAll(sim, [...held, ...held], live, 20);
    assert.equal(afterChurn.ok, afterChurn.total, `${afterChurn.ok}/${afterChurn.total} after 30 % churn`);
    assert.ok(median(afterChurn.hops) <= bound, `median hops after churn ${median(afterChurn.hops)}`);
    const timeouts = sim.nodes.filter(live).reduce((s, d) => s + d.stats().timeouts, 0);
    assert.ok(timeouts > 0, "the dead nodes were really asked (and timed out)");
    console.log(
      `n=${N}: before churn ${before.ok}/${before.total}, median hops ${median(before.hops)}, median queries ${median(before.queried)}; ` +
        `after 30 % churn ${afterChurn.ok}/${afterChurn.total}, median hops ${median(afterChurn.hops)}, median queries ${median(afterChurn.queried)}; ` +
        `${sim.network.delivered} datagrams`,
    );
  } finally {
    await sim.stop();
  }
});
