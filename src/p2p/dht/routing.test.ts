import assert from "node:assert/strict";
import { test } from "node:test";
import { commonPrefixBits, compareDistance, randomId, randomIdWithPrefix } from "./id.ts";
import { PeerStore } from "./peers.ts";
import { IpRateLimit } from "./ratelimit.ts";
import { K, QUESTIONABLE_MS, RoutingTable } from "./routing.ts";
import { TokenSecrets } from "./tokens.ts";

let port = 1;
const node = (id = randomId()) => ({ id, host: "10.0.0.1", port: port++ });

test("the bucket covering our id splits; far buckets stay at K nodes; closest() equals a full sort", () => {
  const t = new RoutingTable(randomId());
  for (let i = 0; i < 3000; i++) t.add(node(), true);
  assert.ok(t.bucketCount > 5, `split into ${t.bucketCount} buckets`);
  const byBucket = new Map<number, number>();
  for (const n of t.all()) {
    const b = Math.min(commonPrefixBits(t.id, n.id), t.bucketCount - 1);
    byBucket.set(b, (byBucket.get(b) ?? 0) + 1);
  }
  for (const [, count] of byBucket) assert.ok(count <= K);
  assert.equal(byBucket.get(0), K, "half the space, one bucket of K");
  for (let i = 0; i < 100; i++) {
    const target = i % 2 ? randomId() : randomIdWithPrefix(t.id, i % 40);
    const want = t
      .all()
      .sort((a, b) => compareDistance(target, a.id, b.id))
      .slice(0, K);
    assert.deepEqual(
      t.closest(target).map((n) => n.port),
      want.map((n) => n.port),
    );
  }
});

test("a full far bucket: bad nodes are replaced at once, questionable ones pinged first, good ones kept", () => {
  let now = 1_000_000;
  const me = randomId();
  const t = new RoutingTable(me, () => now);
  // Fill bucket 0 (ids differing from ours in the first bit) while the table still has more buckets.
  const far = () => {
    const id = randomId();
    id[0] = (me[0] ^ 0x80) & 0xff;
    return node(id);
  };
  for (let i = 0; i < 5; i++) t.add(node(randomIdWithPrefix(me, 30)), true); // force a split first
  const olds = Array.from({ length: K }, far);
  for (const n of olds) assert.equal(t.add(n, true).kind, "added");
  const newcomer = far();
  assert.equal(t.add(newcomer, true).kind, "dropped", "all good: the newcomer waits");
  now += QUESTIONABLE_MS + 1;
  const r = t.add(far(), true);
  assert.equal(r.kind, "full", "questionable nodes: ping the stalest");
  if (r.kind !== "full") return;
  t.failed(r.ping.id, true);
  assert.equal(t.get(r.ping.id), undefined, "the failed node gave its slot to a replacement");
  t.failed(olds[1].id);
  assert.ok(t.get(olds[1].id), "one failure: questionable, still there");
  t.failed(olds[1].id);
  assert.equal(t.get(olds[1].id), undefined, "two: bad, and the second replacement takes its slot");
  t.failed(olds[2].id);
  t.failed(olds[2].id);
  const bad = t.get(olds[2].id);
  assert.ok(bad && t.state(bad) === "bad", "no replacement left: the bad node keeps its slot");
  assert.ok(!t.closest(olds[2].id, 100).some((n) => n.id.equals(olds[2].id)), "but is never handed out");
  const next = far();
  assert.equal(t.add(next, false).kind, "added", "and the next newcomer takes it at once");
  assert.equal(t.get(olds[2].id), undefined);
});

test("a known id from another address is ignored (no hijacking a table entry by spoofing)", () => {
  const t = new RoutingTable(randomId());
  const n = node();
  t.add(n, true);
  assert.equal(t.add({ ...n, host: "6.6.6.6" }, true).kind, "dropped");
  assert.equal(t.get(n.id)?.host, "10.0.0.1");
  assert.equal(t.add({ id: t.id, host: "1.1.1.1", port: 1 }, true).kind, "dropped", "our own id");
});

test("tokens: bound to the IP, valid for one to two rotations, then refused", () => {
  let now = 0;
  const s = new TokenSecrets(() => now, 300_000);
  const tok = s.issue("10.0.0.1");
  assert.ok(s.check(tok, "10.0.0.1"));
  assert.ok(!s.check(tok, "10.0.0.2"), "another IP");
  assert.ok(!s.check(Buffer.from("forged!!"), "10.0.0.1"));
  now = 400_000;
  assert.ok(s.check(tok, "10.0.0.1"), "previous secret still accepted");
  now = 700_000;
  assert.ok(!s.check(tok, "10.0.0.1"), "two rotations later");
});

test("peer store: per-infohash cap, infohash cap, expiry", () => {
  let now = 0;
  const ps = new PeerStore({ perHash: 3, maxHashes: 2, ttlMs: 1000, now: () => now });
  const ih = randomId();
  for (let p = 1; p <= 5; p++) ps.add(ih, { host: "10.0.0.1", port: p });
  assert.deepEqual(
    ps.get(ih).map((p) => p.port),
    [5, 4, 3],
  );
  ps.add(randomId(), { host: "10.0.0.2", port: 1 });
  ps.add(randomId(), { host: "10.0.0.3", port: 1 });
  assert.equal(ps.stats.infohashes, 2);
  assert.deepEqual(ps.get(ih), [], "the oldest infohash went");
  now = 2000;
  ps.sweep();
  assert.deepEqual(ps.stats, { infohashes: 0, peers: 0 });
});

test("per-IP rate limit: a burst, then a trickle; the IP map stays bounded", () => {
  let now = 0;
  const rl = new IpRateLimit({ perSecond: 10, burst: 20, maxIps: 100 }, () => now);
  let ok = 0;
  for (let i = 0; i < 1000; i++) if (rl.allow("6.6.6.6")) ok++;
  assert.equal(ok, 20);
  now = 1000;
  ok = 0;
  for (let i = 0; i < 1000; i++) if (rl.allow("6.6.6.6")) ok++;
  assert.equal(ok, 10);
  assert.ok(rl.allow("7.7.7.7"), "other IPs are unaffected");
  for (let i = 0; i < 1000; i++) rl.allow(`10.0.${i >> 8}.${i & 255}`);
  assert.equal(rl.size, 100);
});

test("bucket refresh: one random id inside each bucket untouched for the age given, then they count as fresh", () => {
  let now = 0;
  const t = new RoutingTable(randomId(), () => now);
  for (let i = 0; i < 500; i++) t.add(node(), true);
  now = QUESTIONABLE_MS;
  const ids = t.staleBuckets(QUESTIONABLE_MS);
  assert.equal(ids.length, t.bucketCount);
  ids.forEach((id, i) => {
    const bits = commonPrefixBits(t.id, id);
    if (i < t.bucketCount - 1) assert.equal(bits, i, "inside bucket i: exactly i shared bits");
    else assert.ok(bits >= i);
  });
  assert.deepEqual(t.staleBuckets(QUESTIONABLE_MS), [], "refreshed buckets are fresh");
  for (let b = 0; b <= 160; b += 7) assert.equal(commonPrefixBits(t.id, randomIdWithPrefix(t.id, b)), b);
});
