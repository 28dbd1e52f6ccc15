/**
 * Edge functions with real workerd, through the real CLI and the seed's shell function: deploy, call, redeploy,
 * rollback, KV on the CAS, the ORIGIN binding, no other network and no host files, an infinite loop stopped at its
 * CPU limit and a memory bomb at its memory limit while another function keeps answering, a module that does not
 * parse refused with workerd's error while the running version keeps serving; vars and secrets (never read back),
 * the scheduled() handler (edge trigger), edge tail, an idle function giving its process up and the next request
 * waking it from the pool of pre-started processes.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { cli, freePort, json, shell, tempHome, until } from "../../src/test/cli.ts";

// Stands in for "a host outside the bindings" and for the origin: both count what reaches them.
const hits = { origin: 0, outside: 0 };
const origin = createServer((req, res) => {
  hits.origin++;
  res.end(`origin saw ${req.url}`);
});
const outside = createServer((_req, res) => {
  hits.outside++;
  res.end("outside reached");
});
let edge = "";
let h: ReturnType<typeof tempHome>;
const run = (...args: string[]) => cli(args, { env: h.env });

before(async () => {
  await new Promise<void>((r) => origin.listen(0, "127.0.0.1", r));
  await new Promise<void>((r) => outside.listen(0, "127.0.0.1", r));
  const port = await freePort();
  h = tempHome({
    matrix: { enabled: false },
    media: { enabled: false },
    web: { enabled: false },
    control: { port: 0 },
    edge: {
      enabled: true,
      port,
      origin: `http://127.0.0.1:${(origin.address() as AddressInfo).port}`,
      // Well above the CPU a memory bomb spends in page faults before it crosses memoryMb, even on a slow machine.
      cpuMsPerRequest: 500,
      memoryMb: 160,
      // Small, so one test can watch a function give its process up and the next request wake it.
      idleStopMs: 2500,
    },
  });
  edge = `http://127.0.0.1:${port}`;
});
after(async () => {
  await h.cleanup();
  origin.close();
  outside.close();
});

function mod(name: string, src: string): string {
  const f = join(h.home, name);
  writeFileSync(f, src);
  return f;
}

const logsOf = (fn: string) => {
  try {
    return readFileSync(join(h.home, "logs", `edge-${fn}.log`), "utf8");
  } catch {
    return "(no log)";
  }
};

const get = async (path: string) => {
  const r = await fetch(edge + path);
  return { status: r.status, text: await r.text() };
};

test("deploy through the seed's shell function, call, redeploy, rollback; logs and metrics", async () => {
  const v1 = mod(
    "hello1.js",
    `export default { fetch(req) { console.log("hello-log " + new URL(req.url).pathname); return new Response("v1 " + new URL(req.url).pathname); } };`,
  );
  const r = await shell(`ami-edge-deploy --function hello --file '${v1}' --route '/hello/*' --json`, { env: h.env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).version, 1);
  assert.deepEqual(await get("/fn/hello/a?b=1"), { status: 200, text: "v1 /a" });
  assert.equal((await get("/hello/x")).text, "v1 /hello/x"); // its route
  const v2 = mod("hello2.js", `export default { fetch() { return new Response("v2"); } };`);
  assert.equal(json(await run("edge", "deploy", "--function", "hello", "--file", v2, "--json")).version, 2);
  assert.equal((await get("/fn/hello/")).text, "v2");
  const back = json(await run("edge", "rollback", "--function", "hello", "--json"));
  assert.equal(back.version, 1);
  assert.equal((await get("/fn/hello/z")).text, "v1 /z");
  const logs = json(await run("edge", "logs", "--function", "hello", "--json"));
  assert.ok(
    logs.lines.some((l: string) => l.includes("hello-log /z")),
    logs.lines.join("\n"),
  );
  const list = json(await run("edge", "list", "--json")).functions;
  const f = list.find((x: { name: string }) => x.name === "hello");
  assert.equal(f.version, 1);
  assert.ok(f.invocations >= 4 && f.errors === 0 && f.p99Ms > 0, JSON.stringify(f));
  const metrics = await (await fetch(`${edge}/metrics`)).text();
  assert.match(metrics, /ami_edge_invocations_total\{function="hello"\} \d+/);
  const stats = (await (await fetch(`${edge}/_ami/stats`)).json()) as Record<string, number>;
  assert.ok(stats.fn_hello_invocations >= 4 && stats.functions === 1, JSON.stringify(stats));
  // The monitor's per-function table.
  const mon = await run("monitor", "--once");
  assert.match(mon.stdout, /edge functions[^\n]*\n[^\n]*FUNCTION[^\n]*\n[^\n]*edge\s+hello\s+\d+\s+0\s/, mon.stdout);
});

test("a module that does not parse is refused with workerd's error; the running version keeps serving", async () => {
  const bad = mod("bad.js", "export default { fetch( { return new Response('x') } ;");
  const r = await run("edge", "deploy", "--function", "hello", "--file", bad, "--json");
  assert.notEqual(r.code, 0);
  assert.match(r.stderr + r.stdout, /AMI_EDGE_BAD_MODULE|refused by workerd/);
  assert.match(r.stderr + r.stdout, /SyntaxError|Unexpected/);
  assert.equal((await get("/fn/hello/still")).text, "v1 /still");
  const names = json(await run("edge", "list", "--json")).functions.map((x: { version: number }) => x.version);
  assert.deepEqual(names, [1]);
  // Top-level code that never ends fails the deploy at the start limit (it does not hang it).
  const spin = await run(
    "edge",
    "deploy",
    "--function",
    "hello",
    "--file",
    mod("spin.js", "for (;;) {}\nexport default {};"),
  );
  assert.notEqual(spin.code, 0);
  assert.match(spin.stderr + spin.stdout, /start limit on CPU time/);
  assert.equal((await get("/fn/hello/still")).text, "v1 /still");
  const noFetch = mod("nofetch.js", "export default { };");
  await run("edge", "deploy", "--function", "empty", "--file", noFetch);
  const e = await get("/fn/empty/");
  assert.equal(e.status, 500);
  assert.match(e.text, /no default export with a fetch/);
});

test("KV on the CAS and the ORIGIN binding work; other hosts and host files are out of reach", async () => {
  const outsideUrl = `http://127.0.0.1:${(outside.address() as AddressInfo).port}/`;
  const src = `export default { async fetch(req, env) {
    const p = new URL(req.url).pathname;
    if (p === "/kv") { await env.KV.put("greeting", "hello kv"); await env.KV.put("n", JSON.stringify({a: 1}));
      const l = await env.KV.list({ prefix: "g" });
      return Response.json({ v: await env.KV.get("greeting"), j: await env.KV.get("n", "json"), miss: await env.KV.get("nope"), keys: l.keys.map(k => k.name) }); }
    if (p === "/origin") return new Response(await (await env.ORIGIN.fetch("http://origin/seg1.ts")).text());
    if (p === "/outside") { try { const r = await fetch(${JSON.stringify(outsideUrl)}); return new Response(r.status + " " + await r.text()); } catch (e) { return new Response("threw " + e.message); } }
    if (p === "/file") { const out = [];
      try { const fs = await import("node:fs"); out.push(fs.readFileSync("/etc/passwd", "utf8")); } catch (e) { out.push("import: " + e.message); }
      try { const r = await fetch("file:///etc/passwd"); out.push(await r.text()); } catch (e) { out.push("fetch: " + e.message); }
      return new Response(out.join("\\n")); }
    return new Response("?");
  } };`;
  const d = await run("edge", "deploy", "--function", "bind", "--file", mod("bind.js", src));
  assert.equal(d.code, 0, d.stderr);
  const kvr = await get("/fn/bind/kv");
  assert.equal(kvr.status, 200, `${kvr.text}\n${logsOf("bind")}`);
  const kv = JSON.parse(kvr.text);
  assert.deepEqual(kv, { v: "hello kv", j: { a: 1 }, miss: null, keys: ["greeting"] });
  // The value is a CAS object: `cas get` by its sha256 returns it.
  const o = await get("/fn/bind/origin");
  assert.equal(o.text, "origin saw /seg1.ts");
  assert.equal(hits.origin, 1);
  const out = await get("/fn/bind/outside");
  assert.match(out.text, /^403 ami-streams edge: outbound network denied/);
  assert.equal(hits.outside, 0, "the outside host was reached");
  const file = await get("/fn/bind/file");
  assert.doesNotMatch(file.text, /root:/);
  // Another function has its own KV namespace: the key "greeting" is not there.
  const other = `export default { async fetch(req, env) { return new Response(String(await env.KV.get("greeting"))); } };`;
  await run("edge", "deploy", "--function", "other", "--file", mod("other.js", other));
  assert.equal((await get("/fn/other/")).text, "null");
  // The KV endpoint refuses anyone but a function's binding.
  const forged = await fetch(`${edge}/_ami/edge/kv/v/greeting`, { headers: { "x-ami-edge-fn": "bind" } });
  assert.equal(forged.status, 403);
});

test("an infinite loop is stopped at its CPU limit, a memory bomb at its memory limit; others keep answering", async () => {
  const loop = `export default { fetch(req) { if (new URL(req.url).pathname === "/spin") { for (;;) {} } return new Response("loop ok"); } };`;
  const bomb = `export default { fetch(req) { if (new URL(req.url).pathname === "/bomb") { const a = []; for (;;) a.push(new Array(1e6).fill(a.length)); } return new Response("bomb ok"); } };`;
  assert.equal((await run("edge", "deploy", "--function", "loop", "--file", mod("loop.js", loop))).code, 0);
  assert.equal((await run("edge", "deploy", "--function", "bomb", "--file", mod("bomb.js", bomb))).code, 0);
  const spinning = fetch(`${edge}/fn/loop/spin`);
  const bombing = fetch(`${edge}/fn/bomb/bomb`);
  // While both misbehave, another function answers.
  assert.equal((await get("/fn/hello/meanwhile")).text, "v1 /meanwhile");
  const s = await spinning;
  assert.equal(s.status, 503);
  assert.equal(((await s.json()) as { errcode: string }).errcode, "AMI_EDGE_CPU_LIMIT");
  const b = await bombing;
  assert.equal(b.status, 503);
  assert.equal(((await b.json()) as { errcode: string }).errcode, "AMI_EDGE_MEMORY_LIMIT");
  // Both were restarted and answer again.
  assert.equal((await get("/fn/loop/")).text, "loop ok");
  assert.equal((await get("/fn/bomb/")).text, "bomb ok");
  const list = json(await run("edge", "list", "--json")).functions;
  const by = (n: string) => list.find((x: { name: string }) => x.name === n);
  assert.equal(by("loop").cpuKills, 1);
  assert.equal(by("bomb").memoryKills, 1);
  assert.equal(by("hello").cpuKills + by("hello").memoryKills, 0);
});

test("a restarted edge service serves every function's active version again", async () => {
  const before = json(await run("edge", "list", "--json")).functions.map((f: { name: string; pid: number }) => f.pid);
  assert.equal((await run("edge", "restart")).code, 0);
  assert.equal((await get("/fn/hello/again")).text, "v1 /again");
  assert.equal((await get("/fn/bind/origin")).text, "origin saw /seg1.ts");
  // The old processes are gone (the service stopped them with itself).
  for (const pid of before.filter(Boolean)) assert.throws(() => process.kill(pid, 0));
});

// A schedule that does not fire while the suite runs (a real tick during `edge tail` would print "cron ran"): 04:07 on
// 29 February.
const CRON = "7 4 29 2 *";

test("vars and secrets reach env; secrets are never read back; scheduled() runs on a trigger; tail follows", async () => {
  const src = `export default {
    async fetch(req, env) { console.log("tail-me " + new URL(req.url).pathname);
      return Response.json({ mode: env.MODE, secret: env.API_KEY, kind: typeof env.KV, last: await env.KV.get("last-cron") }); },
    async scheduled(controller, env) { await env.KV.put("last-cron", controller.cron); console.log("cron ran " + controller.cron); },
  };`;
  const file = mod("cfg.js", src);
  const d = await run("edge", "deploy", "--function", "cfg", "--file", file, "--var", "MODE=blue");
  assert.equal(d.code, 0, d.stderr);
  const r = await run(
    "edge",
    "deploy",
    "--function",
    "cfg",
    "--file",
    file,
    "--var",
    "MODE=green",
    "--secret",
    "API_KEY=s3cr3t-value",
    "--cron",
    CRON,
    "--json",
  );
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stdout, /s3cr3t-value/);
  assert.deepEqual(JSON.parse((await get("/fn/cfg/")).text), {
    mode: "green",
    secret: "s3cr3t-value",
    kind: "object",
    last: null,
  });
  const listed = await run("edge", "list", "--json");
  assert.doesNotMatch(listed.stdout + JSON.stringify(await (await fetch(`${edge}/_ami/stats`)).json()), /s3cr3t-value/);
  const f = json(listed).functions.find((x: { name: string }) => x.name === "cfg");
  assert.deepEqual([f.vars, f.secrets, f.crons], [{ MODE: "green" }, ["API_KEY"], [CRON]]);
  // The secret survives a rollback (secrets belong to the function, vars to the version).
  assert.equal(json(await run("edge", "rollback", "--function", "cfg", "--json")).version, 1);
  assert.deepEqual(JSON.parse((await get("/fn/cfg/")).text).mode, "blue");
  assert.equal(JSON.parse((await get("/fn/cfg/")).text).secret, "s3cr3t-value");
  await run("edge", "rollback", "--function", "cfg", "--version", "2");
  const t = json(await run("edge", "trigger", "--function", "cfg", "--cron", CRON, "--json"));
  assert.equal(t.status, 204, t.text);
  assert.equal(JSON.parse((await get("/fn/cfg/")).text).last, CRON);
  const noHandler = json(await run("edge", "trigger", "--function", "hello", "--json"));
  assert.equal(noHandler.status, 501);
  // tail: lines written while it follows, not the older ones.
  const tail = run("edge", "tail", "--function", "cfg", "--seconds", "3");
  await new Promise((res) => setTimeout(res, 1200));
  await get("/fn/cfg/tailed-1");
  await get("/fn/cfg/tailed-2");
  const out = await tail;
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stdout, /tail-me \/tailed-1/);
  assert.match(out.stdout, /tail-me \/tailed-2/);
  assert.doesNotMatch(out.stdout, /cron ran/);
  const bad = await run("edge", "deploy", "--function", "cfg", "--file", file, "--cron", "61 * * * *");
  assert.match(bad.stderr, /minute '61'/);
  const badVar = await run("edge", "deploy", "--function", "cfg", "--file", file, "--var", "KV=x");
  assert.match(badVar.stderr, /not KV or ORIGIN/);
});

test("an idle function gives its process up; the next request wakes it from the pool", async () => {
  const running = async () =>
    json(await run("edge", "list", "--json")).functions.find((x: { name: string }) => x.name === "hello").running;
  await get("/fn/hello/keep");
  await until("hello stopped while idle", async () => !(await running()), 15_000);
  const stats = (await (await fetch(`${edge}/_ami/stats`)).json()) as Record<string, number>;
  assert.equal(stats.idleProcesses, 1, JSON.stringify(stats));
  assert.equal((await get("/fn/hello/woken")).text, "v1 /woken");
  assert.equal(await running(), true);
  // Then a process of its own takes over from the pooled one (no loader hop), and it keeps answering.
  await until(
    "hello on a dedicated process",
    async () =>
      json(await run("edge", "list", "--json")).functions.find((x: { name: string }) => x.name === "hello").dedicated,
    15_000,
  );
  assert.equal((await get("/fn/hello/direct")).text, "v1 /direct");
});

test("delete removes a function; bad names are refused", async () => {
  assert.equal((await run("edge", "delete", "--function", "other")).code, 0);
  assert.equal((await get("/fn/other/")).status, 404);
  const r = await run("edge", "deploy", "--function", "Bad Name", "--code", "x");
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /function name/);
});
