import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { openStoreAt } from "../cas/open.ts";
import { silentLogger } from "../core/logger.ts";
import { runtimePaths } from "../core/paths.ts";
import { workerdConfig } from "./capnp.ts";
import { edgeSchema } from "./config.ts";
import { cronMatches, parseCron } from "./cron.ts";
import { KvStore } from "./kv.ts";
import { WorkerdPool } from "./pool.ts";
import { FunctionRegistry, SecretStore } from "./registry.ts";
import { checkCrons, checkName, checkRoute, parsePairs, percentile, routeMatches } from "./routes.ts";
import { startEdge } from "./server.ts";
import { defaultWorkerd } from "./workerd.ts";

const dir = mkdtempSync(join(tmpdir(), "ami-edge-unit-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const plan = {
  socket: "/tmp/s.sock",
  loaderFile: "loader.js",
  denyFile: "deny.js",
  ctlToken: "c",
  compatibilityDate: "2025-01-01",
  kv: { address: "127.0.0.1:8790", token: "t" },
};

test("workerd config: every fetch goes to the deny worker, no disk or network service, KV carries the token", () => {
  const c = workerdConfig({ ...plan, origin: null });
  assert.equal(c.match(/globalOutbound = "deny"/g)?.length, 2);
  assert.doesNotMatch(c, /disk|network|internet/);
  assert.match(c, /injectRequestHeaders = \[\(name = "x-ami-edge-token", value = "t"\)/);
  assert.match(c, /workerLoader = \(\)/);
  assert.doesNotMatch(c, /ORIGIN/);
  assert.match(workerdConfig({ ...plan, origin: "127.0.0.1:9000" }), /external = \(address = "127.0.0.1:9000"/);
  assert.match(c, /address = "unix:\/tmp\/s.sock"/);
});

test("cron: fields, lists, ranges, steps; day-of-month OR day-of-week; bad ones name the field", () => {
  const at = (iso: string) => new Date(iso);
  assert.ok(cronMatches(parseCron("*/5 * * * *"), at("2026-12-07T10:15:00Z")));
  assert.ok(!cronMatches(parseCron("*/5 * * * *"), at("2026-12-07T10:16:00Z")));
  assert.ok(cronMatches(parseCron("0 9-17 * * 1-5"), at("2026-12-07T10:00:00Z"))); // a Monday
  assert.ok(!cronMatches(parseCron("0 9-17 * * 1-5"), at("2026-12-06T10:00:00Z"))); // a Sunday
  assert.ok(cronMatches(parseCron("0 0 1 * 7"), at("2026-12-06T00:00:00Z"))); // Sunday (7), not the 1st
  assert.ok(cronMatches(parseCron("30 2 1,15 6 *"), at("2026-06-15T02:30:00Z")));
  assert.throws(() => parseCron("* * *"), /5 fields/);
  assert.throws(() => parseCron("61 * * * *"), /minute '61'/);
  assert.throws(() => parseCron("* * * * mon"), /day of week 'mon'/);
  assert.throws(() => checkCrons(["* * * * *", "* * * * *", "* * * * *", "* * * * *"]), /at most 3/);
});

test("vars and secrets: NAME=value pairs; KV and ORIGIN reserved; secrets merge, an empty value removes one", () => {
  assert.deepEqual(parsePairs("var", ["A=1", "B_2=x=y", "E="]), { A: "1", B_2: "x=y", E: "" });
  assert.throws(() => parsePairs("var", ["KV=1"]), /not KV or ORIGIN/);
  assert.throws(() => parsePairs("secret", ["noequals"]), /secret 'noequals'/);
  assert.throws(() => parsePairs("var", ["1A=x"]), /var '1A'/);
  const s = new SecretStore(dir);
  s.update("f", { TOKEN: "abc", OTHER: "o" });
  s.update("f", { OTHER: "" });
  assert.deepEqual(new SecretStore(dir).get("f"), { TOKEN: "abc" });
  s.remove("f");
  assert.deepEqual(new SecretStore(dir).get("f"), {});
});

const getText = (socketPath: string) =>
  new Promise<string>((resolve, reject) => {
    const r = request({ socketPath, path: "/" }, (res) => {
      let b = "";
      res.on("data", (c) => (b += c));
      res.on("end", () => resolve(b));
    });
    r.once("error", reject);
    r.end();
  });

test("pool (real workerd): a claimed process loads a function and serves it; a bad module is workerd's error", async () => {
  const pool = new WorkerdPool({
    size: 1,
    log: silentLogger,
    spawn: {
      workerd: defaultWorkerd(),
      runDir: join(dir, "run"),
      sockDir: dir,
      home: dir,
      compatibilityDate: "2025-01-01",
      kvAddress: "127.0.0.1:9",
      origin: null,
    },
  });
  try {
    pool.fill();
    await pool.settled();
    assert.equal(pool.idle, 1);
    const p = await pool.claim();
    assert.equal(pool.idle, 0); // refilled in the background
    await p.load({
      code: `export default { fetch(r, env) { return new Response("hi " + env.WHO); } };`,
      vars: { WHO: "x" },
    });
    assert.equal(await getText(p.socket), "hi x");
    await assert.rejects(p.load({ code: "export default {}", vars: {} }), /already serves/);
    await p.close();
    const bad = await pool.claim();
    await assert.rejects(bad.load({ code: "export default { fetch( {", vars: {} }), /SyntaxError/);
    await bad.close();
    await pool.settled();
    assert.equal(pool.idle, 1);
    // A dedicated process (promotion, poolSize 0): the modules in its config, the same env, no loader.
    const direct = await pool.startDirect({
      code: `export default { fetch(r, env) { return new Response("direct " + env.WHO); } };`,
      vars: { WHO: "y" },
    });
    assert.equal(await getText(direct.socket), "direct y");
    await direct.close();
    await assert.rejects(pool.startDirect({ code: "export default { fetch( {", vars: {} }), /SyntaxError/);
    // Top-level code runs at load: a loop or a memory bomb there is stopped at the start limits, loaded or dedicated.
    const limits = { cpuMs: 300, memoryBytes: 200 * 1024 * 1024 };
    const spin = await pool.claim();
    await assert.rejects(spin.load({ code: "for (;;) {}\nexport default {};", vars: {} }, limits), /CPU time/);
    await spin.close();
    const bomb = "const a = []; for (;;) a.push(new Array(1e6).fill(1));\nexport default {};";
    // The bomb gets CPU to spare: on a loaded machine its page faults and GC can pass 300 ms before its RSS passes
    // 200 MB, and this case is about the memory limit.
    await assert.rejects(pool.startDirect({ code: bomb, vars: {} }, { ...limits, cpuMs: 10_000 }), /memory/);
  } finally {
    await pool.close();
  }
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

test("KV keys named like Object.prototype's members are plain keys (no lost write, no CAS hold leaked)", async () => {
  const cas = openStoreAt(join(dir, "cas-proto"));
  const kv = new KvStore(dir, cas);
  for (const key of ["__proto__", "constructor", "hasOwnProperty"]) {
    await kv.put("p", key, Buffer.from("one"));
    const first = kv.id("p", key);
    assert.ok(first, `${key} stored`);
    await kv.put("p", key, Buffer.from("two"));
    assert.deepEqual((await cas.stat(first)).holds, [], `${key}: the overwritten value is released`);
  }
  assert.deepEqual(new KvStore(dir, cas).list("p", ""), ["__proto__", "constructor", "hasOwnProperty"]);
  assert.equal(new KvStore(dir, cas).id("p", "toString"), undefined);
});

test("cron triggers (real workerd): the minute's due functions run scheduled(), the others do not", async () => {
  const home = join(dir, "cron-home");
  const edge = await startEdge({
    config: edgeSchema.parse({ port: 0 }),
    paths: runtimePaths(home),
    log: silentLogger,
    cas: openStoreAt(join(home, "cas")),
    token: null,
  });
  try {
    const code = `export default {
      fetch() { return new Response("ok"); },
      async scheduled(c, env) { await env.KV.put("ran", c.cron + " @ " + new Date(c.scheduledTime).toISOString()); },
    };`;
    await edge.runtime.deploy("every5", code, { crons: ["*/5 * * * *"] });
    await edge.runtime.deploy("hourly", code, { crons: ["0 * * * *"] });
    assert.deepEqual(await edge.runtime.runDue(new Date("2026-12-07T10:15:00Z")), ["every5"]);
    assert.deepEqual(await edge.runtime.runDue(new Date("2026-12-07T10:16:00Z")), []);
    assert.deepEqual((await edge.runtime.runDue(new Date("2026-12-07T11:00:00Z"))).sort(), ["every5", "hourly"]);
    const read = async (fn: string) => {
      const parts: Buffer[] = [];
      for await (const b of edge.runtime.kv.get(fn, "ran") ?? []) parts.push(b);
      return Buffer.concat(parts).toString();
    };
    assert.match(await read("every5"), /^\*\/5 \* \* \* \* @ /);
    assert.match(await read("hourly"), /^0 \* \* \* \* @ /);
    const stats = edge.runtime.stats();
    assert.deepEqual(
      stats.map((f) => [f.name, f.cronRuns, f.errors]),
      [
        ["every5", 2, 0],
        ["hourly", 1, 0],
      ],
    );
  } finally {
    await edge.close();
  }
});
