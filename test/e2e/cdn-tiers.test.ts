/**
 * The edge node's disk tier on the real content-addressed store, against a real node:http origin: objects beyond
 * the memory budget are served from disk without an origin request, a restarted node answers from disk (warm
 * cache), purges reach the disk tier, and the disk budget evicts least recently used.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { openStoreAt } from "../../src/cas/open.ts";
import { cdnSchema } from "../../src/cdn/config.ts";
import { DiskTier } from "../../src/cdn/disk.ts";
import { EdgeNode } from "../../src/cdn/node.ts";
import { createLogger } from "../../src/core/logger.ts";

const log = createLogger({ level: "error" });
const dir = mkdtempSync(join(tmpdir(), "ami-cdn-tiers-"));
const originHits = new Map<string, number>();
const total = () => [...originHits.values()].reduce((a, b) => a + b, 0);
const bodyOf = (path: string, size: number) => {
  const b = Buffer.alloc(size);
  const seed = [...path].reduce((a, c) => a * 31 + c.charCodeAt(0), 7) % 9973;
  for (let i = 0; i < size; i++) b[i] = (i * 7 + seed) % 251;
  return b;
};
const origin = http.createServer((req, res) => {
  const path = (req.url ?? "/").split("?")[0];
  originHits.set(path, (originHits.get(path) ?? 0) + 1);
  const body = bodyOf(path, 40_000);
  res.writeHead(200, {
    "cache-control": "max-age=600",
    "surrogate-key": path.split("/")[1],
    "content-length": body.length,
  });
  res.end(body);
});
let originUrl = "";

function edge(diskBytes: number, index = "index.json"): EdgeNode {
  const disk = new DiskTier({
    store: openStoreAt(join(dir, "cas")),
    indexFile: join(dir, index),
    maxBytes: diskBytes,
    hold: "cdn:test",
    log,
  });
  return new EdgeNode({
    config: cdnSchema.parse({ port: 0, memoryBytes: 100_000, diskBytes }),
    origin: originUrl,
    log,
    disk,
  });
}

/** Host is part of the cache key: one name for every node, whatever port it listens on. */
function get(n: EdgeNode, path: string): Promise<{ status: number; cache: string | null; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http
      .get(`${n.url}${path}`, { headers: { host: "cdn.test" }, agent: false }, (res) => {
        const cs: Buffer[] = [];
        res.on("data", (c) => cs.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            cache: (res.headers["x-cache"] as string) ?? null,
            body: Buffer.concat(cs),
          }),
        );
      })
      .on("error", reject);
  });
}

before(async () => {
  await new Promise<void>((r) => origin.listen(0, "127.0.0.1", r));
  originUrl = `http://127.0.0.1:${(origin.address() as { port: number }).port}`;
});

after(async () => {
  origin.closeAllConnections();
  await new Promise((r) => origin.close(r));
  rmSync(dir, { recursive: true, force: true });
});

const paths = ["/a/1", "/a/2", "/a/3", "/b/4", "/b/5", "/b/6"];

test("objects beyond the memory budget are served from disk; a restarted node is warm", async () => {
  const n1 = edge(10_000_000);
  await n1.start();
  for (const p of paths) assert.equal((await get(n1, p)).cache, "MISS");
  await n1.disk?.flush();
  assert.equal(n1.disk?.count, 6);
  assert.ok(n1.tier.count < 6, "the memory tier holds only part of them");
  for (const p of paths) {
    const r = await get(n1, p);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, bodyOf(p, 40_000), p);
  }
  assert.equal(total(), 6, "no origin request for objects evicted from memory");
  assert.ok(n1.stats.diskReads >= 6 - 3);
  await n1.close();

  const n2 = edge(10_000_000);
  await n2.start();
  try {
    for (const p of paths) {
      const r = await get(n2, p);
      assert.equal(r.cache, "HIT", p);
      assert.deepEqual(r.body, bodyOf(p, 40_000));
    }
    assert.equal(total(), 6, "the restarted node answered from disk");
    // A purge by tag reaches the disk tier: the next request goes to the origin.
    assert.equal(n2.purge({ tags: ["b"] }), 3);
    for (const p of ["/b/4", "/b/5"]) assert.equal((await get(n2, p)).cache, "MISS");
    assert.equal(originHits.get("/b/4"), 2);
    // A purge landing while an object is still being written to disk keeps it off the disk.
    await get(n2, "/d/7");
    n2.purge({ tags: ["d"] });
    await n2.disk?.flush();
    assert.equal(n2.disk?.has("cdn.test/d/7"), false);
  } finally {
    await n2.close();
  }
  // The purge is remembered across a restart too.
  const n3 = edge(10_000_000);
  assert.equal(n3.disk?.count, 5, "a/1-3, and b/4-5 fetched again");
  await n3.disk?.flush();
});

test("the disk budget evicts least recently used and releases their holds", async () => {
  const n = edge(100_000, "small.json");
  await n.start();
  try {
    for (const p of ["/c/1", "/c/2", "/c/3", "/c/4"]) await get(n, p);
    await n.disk?.flush();
    assert.equal(n.disk?.count, 2);
    assert.equal(n.disk?.evictions, 2);
    assert.ok((n.disk?.bytes ?? 0) <= 100_000);
    // The evicted objects' holds are released (the store's next gc frees them); the kept ones are held.
    const store = openStoreAt(join(dir, "cas"));
    const holdsOf = async (p: string) => (await store.stat((await store.put(bodyOf(p, 40_000))).id)).holds;
    await new Promise((r) => setTimeout(r, 100));
    // (Writes overlap, so which two were written last is not fixed: two held, two released.)
    const holds = await Promise.all(["/c/1", "/c/2", "/c/3", "/c/4"].map(holdsOf));
    assert.deepEqual(holds.map((h) => h.join()).sort(), ["", "", "cdn:test", "cdn:test"]);
  } finally {
    await n.close();
  }
});
