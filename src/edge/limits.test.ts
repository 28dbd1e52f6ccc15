/**
 * CPU a function burns outside a request (real workerd): work left running after the response (ctx.waitUntil, a
 * timer) and a scheduled() handler are held to the per-request CPU budget too, instead of a core forever.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { openStoreAt } from "../cas/open.ts";
import { silentLogger } from "../core/logger.ts";
import { runtimePaths } from "../core/paths.ts";
import { edgeSchema } from "./config.ts";
import { startEdge } from "./server.ts";

const dir = mkdtempSync(join(tmpdir(), "ami-edge-limits-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const until = async (f: () => boolean, ms: number) => {
  const end = Date.now() + ms;
  while (!f() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  return f();
};

test("a loop after the response and a looping scheduled() are stopped at the CPU limit", async () => {
  const home = join(dir, "home");
  const edge = await startEdge({
    config: edgeSchema.parse({ port: 0, poolSize: 1 }),
    paths: runtimePaths(home),
    log: silentLogger,
    cas: openStoreAt(join(home, "cas")),
    token: null,
  });
  const kills = (fn: string) => edge.runtime.stats().find((f) => f.name === fn)?.cpuKills ?? 0;
  try {
    await edge.runtime.deploy(
      "after",
      `export default { fetch(req, env, ctx) {
        ctx.waitUntil(new Promise(() => setTimeout(() => { for (;;) {} }, 20)));
        return new Response("answered");
      } };`,
    );
    const r = await fetch(`${edge.url}/fn/after/`);
    assert.equal(await r.text(), "answered");
    assert.ok(await until(() => kills("after") > 0, 10_000), "the loop after the response is still running");
    await edge.runtime.deploy(
      "sched",
      `export default { fetch() { return new Response("ok"); }, scheduled() { for (;;) {} } };`,
    );
    let timer: NodeJS.Timeout | undefined;
    const t = await Promise.race([
      edge.runtime.trigger("sched"),
      new Promise<null>((r) => {
        timer = setTimeout(() => r(null), 10_000);
      }),
    ]);
    clearTimeout(timer);
    assert.ok(t && t.status !== 204, "the looping scheduled() was not stopped");
    assert.ok(kills("sched") > 0);
    // Both answer again.
    assert.equal(await (await fetch(`${edge.url}/fn/after/`)).text(), "answered");
  } finally {
    await edge.close();
  }
});

test("a function's secret values never reach its log (what edge tail and edge logs show)", async () => {
  const home = join(dir, "home-secrets");
  const paths = runtimePaths(home);
  const edge = await startEdge({
    config: edgeSchema.parse({ port: 0, poolSize: 1 }),
    paths,
    log: silentLogger,
    cas: openStoreAt(join(home, "cas")),
    token: null,
  });
  const secret = "sk-live-0123456789abcdef";
  const log = () => {
    try {
      return readFileSync(paths.logFile("edge-talk"), "utf8");
    } catch {
      return "";
    }
  };
  try {
    await edge.runtime.deploy(
      "talk",
      `export default { fetch(req, env) { console.log("calling with " + env.API_KEY + " mode=" + env.MODE); return new Response("ok"); } };`,
      { vars: { MODE: "plain-var" }, secrets: { API_KEY: secret } },
    );
    assert.equal(await (await fetch(`${edge.url}/fn/talk/`)).text(), "ok");
    assert.ok(await until(() => log().includes("calling with"), 5000), `no log line: ${log()}`);
    assert.ok(!log().includes(secret), `the secret is in the log: ${log()}`);
    assert.match(log(), /calling with \[secret API_KEY\] mode=plain-var/);
  } finally {
    await edge.close();
  }
});
