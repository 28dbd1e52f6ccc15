import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { openStoreAt } from "../cas/open.ts";
import { workerdConfig } from "./capnp.ts";
import { edgeSchema } from "./config.ts";
import { KvStore } from "./kv.ts";
import { FunctionRegistry } from "./registry.ts";
import { checkName, checkRoute, percentile, routeMatches } from "./runtime.ts";

const dir = mkdtempSync(join(tmpdir(), "ami-edge-unit-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const plan = {
  socket: "/tmp/s.sock",
  moduleFile: "worker.js",
  entryFile: "ami-entry.js",
  denyFile: "deny.js",
  probeToken: "p",
  compatibilityDate: "2025-01-01",
  kv: { address: "127.0.0.1:8790", fn: "f", token: "t" },
};

test("workerd config: every fetch goes to the deny worker, no disk or network service, KV names the function", () => {
  const c = workerdConfig({ ...plan, origin: null });
  assert.equal(c.match(/globalOutbound = "deny"/g)?.length, 2);
  assert.doesNotMatch(c, /disk|network|internet/);
  assert.match(c, /injectRequestHeaders = \[\(name = "x-ami-edge-fn", value = "f"\)/);
  assert.doesNotMatch(c, /ORIGIN/);
  assert.match(workerdConfig({ ...plan, origin: "127.0.0.1:9000" }), /external = \(address = "127.0.0.1:9000"/);
  assert.match(c, /address = "unix:\/tmp\/s.sock"/);
});

test("routes: host/path patterns with a trailing *; bad names and routes refused", () => {
  assert.ok(routeMatches("/api/*", "x", "/api/v1?q"));
  assert.ok(!routeMatches("/api/*", "x", "/apx"));
  assert.ok(routeMatches("/exact", "x", "/exact?a=1"));
  assert.ok(!routeMatches("/exact", "x", "/exact/more"));
  assert.ok(routeMatches("example.com/img/*", "example.com:8790", "/img/a.png"));
  assert.ok(!routeMatches("example.com/img/*", "other.com", "/img/a.png"));
  assert.throws(() => checkRoute("api/*x"), /route/);
  assert.throws(() => checkName("Bad"), /function name/);
  assert.throws(() => checkName("a".repeat(64)), /function name/);
  checkName("ok-1");
  assert.equal(percentile([5, 1, 3, 2, 4], 50), 3);
  assert.equal(percentile([], 99), 0);
});

test("config defaults parse; bad values name their key", () => {
  const c = edgeSchema.parse({});
  assert.equal(c.enabled, false);
  assert.equal(c.cpuMsPerRequest, 50);
  const r = edgeSchema.safeParse({ origin: "ftp://x" });
  assert.equal(r.success, false);
  assert.equal(r.error?.issues[0].path[0], "origin");
});

test("the registry survives a reopen", () => {
  const r = new FunctionRegistry(dir);
  const v = { version: 1, id: "i", sha256: "s", size: 1, route: null, region: "eu", deployedAt: "t" };
  r.put({ name: "f", versions: [v], active: 1 });
  const again = new FunctionRegistry(dir);
  assert.deepEqual(again.active("f"), v);
  assert.equal(again.get("constructor"), undefined);
  again.remove("f");
  assert.equal(new FunctionRegistry(dir).list().length, 0);
});

test("KV values are CAS objects held per key; overwrite and delete release them; namespaces are apart", async () => {
  const cas = openStoreAt(join(dir, "cas"));
  const kv = new KvStore(dir, cas);
  await kv.put("a", "k", Buffer.from("one"));
  const first = kv.id("a", "k") as string;
  assert.deepEqual((await cas.stat(first)).holds, ["edge-kv:a:k"]);
  await kv.put("a", "k", Buffer.from("two"));
  assert.deepEqual((await cas.stat(first)).holds, []);
  const chunks: Buffer[] = [];
  for await (const b of kv.get("a", "k") ?? []) chunks.push(b);
  assert.equal(Buffer.concat(chunks).toString(), "two");
  assert.equal(kv.get("b", "k"), undefined);
  assert.deepEqual(new KvStore(dir, cas).list("a", ""), ["k"]);
  assert.equal(await kv.delete("a", "k"), true);
  assert.equal(await kv.delete("a", "k"), false);
});
