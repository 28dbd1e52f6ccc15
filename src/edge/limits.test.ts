/**
 * CPU a function burns outside a request (real workerd): work left running after the response (ctx.waitUntil, a
 * timer) and a scheduled() handler are held to the per-request CPU budget too, instead of a core forever; also on a
 * loaded machine, where such a loop gets a small share of a core; and a process that is starting up is not charged.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { openStoreAt } from "../cas/open.ts";
import { silentLogger } from "../core/logger.ts";
import { runtimePaths } from "../core/paths.ts";
import { edgeSchema } from "./config.ts";
import { startEdge } from "./server.ts";

const dir = mkdtempSync(join(tmpdir(), "ami-edge-limits-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const until = async (f: () => boolean | Promise<boolean>, ms: number) => {
  const end = Date.now() + ms;
  while (!(await f()) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  return f();
};

/**
 * A loaded machine while `f` runs: this process and every process it starts (the edge service's workerd processes)
 * share CPU 0 with `burners` busy loops, so a function gets a fifth of a core or less. Affinity is restored after.
 */
async function loaded<T>(f: () => Promise<T>, burners = 4): Promise<T> {
  const pin = (cpus: string) =>
    execFileSync("taskset", ["-a", "-p", "-c", cpus, String(process.pid)], { stdio: "ignore" });
  pin("0");
  const spin: ChildProcess[] = [];
  try {
    for (let i = 0; i < burners; i++)
      spin.push(spawn("taskset", ["-c", "0", process.execPath, "-e", "for(;;){}"], { stdio: "ignore" }));
    return await f();
  } finally {
    for (const c of spin) c.kill("SIGKILL");
    pin(`0-${availableParallelism() - 1}`);
  }
}

async function withEdge(
  name: string,
  f: (edge: Awaited<ReturnType<typeof startEdge>>, paths: ReturnType<typeof runtimePaths>) => Promise<void>,
) {
  const home = join(dir, name);
  const paths = runtimePaths(home);
  const edge = await startEdge({
    config: edgeSchema.parse({ port: 0, poolSize: 1 }),
    paths,
    log: silentLogger,
    cas: openStoreAt(join(home, "cas")),
    token: null,
  });
  try {
    await f(edge, paths);
  } finally {
    await edge.close();
  }
}

const statsOf = (edge: Awaited<ReturnType<typeof startEdge>>, fn: string) => {
  const f = edge.runtime.stats().find((x) => x.name === fn);
  assert.ok(f, `no function ${fn}`);
  return f;
};

test("on a loaded machine (the loop gets a small share of a core) a loop after the response is still stopped", async () => {
  await withEdge("home-loaded", (edge) =>
    loaded(async () => {
      await edge.runtime.deploy(
        "after",
        `export default { fetch(req, env, ctx) {
          ctx.waitUntil(new Promise(() => setTimeout(() => { for (;;) {} }, 20)));
          return new Response("answered");
        } };`,
      );
      // On the process dedicated to it (the pooled one it was loaded into is replaced ~300 ms after serving).
      assert.ok(await until(() => statsOf(edge, "after").dedicated, 20_000), "no dedicated process took over");
      assert.equal(await (await fetch(`${edge.url}/fn/after/`)).text(), "answered");
      assert.ok(
        await until(() => statsOf(edge, "after").cpuKills > 0, 30_000),
        "the loop after the response escaped the CPU limit on a loaded machine",
      );
    }),
  );
});

test("on a loaded machine a process starting up (top-level code, a rollback, a scheduled() during promotion) is not stopped", async () => {
  // Top-level code of ~100 ms CPU (well over cpuMsPerRequest, within the start limit) runs in every process the
  // function starts: the pooled one it is loaded into and the dedicated one that takes over ~300 ms later.
  // scheduled() lasts 2.5 s, so the takeover happens while it runs (the pooled process must finish it).
  const src = (v: number) => `let x = 0; for (let i = 0; i < 15e6; i++) x = (x * 31 + i) | 0;
    export default {
      async fetch(req, env, ctx) {
        if (new URL(req.url).pathname === "/after") return new Response(await env.KV.get("after"));
        // Work after the response, in whichever process answered (the pooled one, replaced while it waits).
        ctx.waitUntil(new Promise((r) => setTimeout(r, 1000)).then(() => env.KV.put("after", "v${v}")));
        return new Response("v${v} " + (x !== 1));
      },
      async scheduled(c, env) { await env.KV.put("ran", c.cron); await new Promise((r) => setTimeout(r, 2500)); },
    };`;
  const text = async (edge: Awaited<ReturnType<typeof startEdge>>, path: string) =>
    (await fetch(`${edge.url}/fn/boot${path}`)).text();
  await withEdge("home-startup", (edge) =>
    loaded(async () => {
      await edge.runtime.deploy("boot", src(1));
      await edge.runtime.deploy("boot", src(2));
      for (const v of [1, 2]) {
        await edge.runtime.rollback("boot", v);
        const before = statsOf(edge, "boot");
        const t = await edge.runtime.trigger("boot", "* * * * *");
        const s = statsOf(edge, "boot");
        assert.equal(
          t.status,
          204,
          `scheduled() after the rollback to v${v}: ${t.status} ${t.text} ${JSON.stringify(s)}`,
        );
        assert.equal(await text(edge, "/"), `v${v} true`, "the rolled-back version answers");
        assert.ok(await until(() => statsOf(edge, "boot").dedicated, 10_000), "no dedicated process took over");
        assert.ok(
          await until(async () => (await text(edge, "/after")) === `v${v}`, 10_000),
          `the waitUntil work was cut off (dedicated before the trigger: ${before.dedicated})`,
        );
      }
      await new Promise((r) => setTimeout(r, 1000)); // idle after start-up: still no charge
      assert.equal(await text(edge, "/"), "v2 true");
      const s = statsOf(edge, "boot");
      assert.equal(s.cpuKills + s.memoryKills, 0, `killed: ${JSON.stringify(s)}`);
    }),
  );
});

test("a loop after the response and a looping scheduled() are stopped at the CPU limit", async () => {
  await withEdge("home", async (edge) => {
    const kills = (fn: string) => edge.runtime.stats().find((f) => f.name === fn)?.cpuKills ?? 0;
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
  });
});

test("a function's secret values never reach its log (what edge tail and edge logs show)", async () => {
  await withEdge("home-secrets", async (edge, paths) => {
    const secret = "sk-live-0123456789abcdef";
    const log = () => {
      try {
        return readFileSync(paths.logFile("edge-talk"), "utf8");
      } catch {
        return "";
      }
    };
    await edge.runtime.deploy(
      "talk",
      `export default { fetch(req, env) { console.log("calling with " + env.API_KEY + " mode=" + env.MODE); return new Response("ok"); } };`,
      { vars: { MODE: "plain-var" }, secrets: { API_KEY: secret } },
    );
    assert.equal(await (await fetch(`${edge.url}/fn/talk/`)).text(), "ok");
    assert.ok(await until(() => log().includes("calling with"), 5000), `no log line: ${log()}`);
    assert.ok(!log().includes(secret), `the secret is in the log: ${log()}`);
    assert.match(log(), /calling with \[secret API_KEY\] mode=plain-var/);
  });
});
