/**
 * `cdn deploy` nodes are supervised units (`cdn-<region>`) through the real CLI: a node serves a real node:http
 * origin, a kill -9 is answered by the supervisor's restart at the same URL, `status` and `monitor` show it with
 * its hit ratio, req/s, bytes and origin health, `cdn remove` stops it for good.
 */
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, test } from "node:test";
import { pidAlive } from "../../src/control/proc.ts";
import { cli, json, tempHome, until } from "../../src/test/cli.ts";

const h = tempHome({
  matrix: { enabled: false },
  media: { enabled: false },
  control: { port: 0, backoff: { initialMs: 100 } },
});
const env = h.env;
let originRequests = 0;
const origin = http.createServer((req, res) => {
  originRequests++;
  res.writeHead(200, { "cache-control": "max-age=600" });
  res.end(`origin ${req.url}`);
});
let originUrl = "";
let nodeUrl = "";

before(async () => {
  await new Promise<void>((r) => origin.listen(0, "127.0.0.1", r));
  originUrl = `http://127.0.0.1:${(origin.address() as { port: number }).port}`;
});

after(async () => {
  await h.cleanup();
  origin.closeAllConnections();
  await new Promise((r) => origin.close(r));
});

const unit = async () =>
  json(await cli(["status", "--json"], { env })).services.find((s: { name: string }) => s.name === "cdn-eu-west-1");

test("cdn deploy starts a supervised node that serves and caches", async () => {
  const r = await cli(["cdn", "deploy", "--region", "eu-west-1", "--origin", originUrl, "--json"], { env });
  assert.equal(r.code, 0, r.stderr);
  const n = json(r);
  nodeUrl = n.url;
  assert.equal(n.up, true);
  assert.ok(pidAlive(n.pid));
  const first = await fetch(`${nodeUrl}/a`);
  assert.equal(first.headers.get("x-cache"), "MISS");
  assert.equal(await first.text(), "origin /a");
  assert.equal((await fetch(`${nodeUrl}/a`)).headers.get("x-cache"), "HIT");
  assert.equal(originRequests, 1);
  const s = await unit();
  assert.equal(s.state, "running");
  assert.equal(s.pid, n.pid);
  // A second node for the same region is refused.
  const again = await cli(["cdn", "deploy", "--region", "eu-west-1", "--origin", originUrl], { env });
  assert.equal(again.code, 2, again.stderr);
  assert.match(again.stderr, /already has a node/);
});

test("kill -9 of a deployed node: the supervisor restarts it at the same URL", async () => {
  const before = await unit();
  process.kill(before.pid, "SIGKILL");
  const restarted = await until("restart", async () => {
    const s = await unit();
    return s.state === "running" && s.pid !== before.pid && s;
  });
  assert.equal(restarted.restarts, 1);
  const r = await fetch(`${nodeUrl}/a`);
  assert.equal(r.status, 200);
  assert.equal(await r.text(), "origin /a");
  const list = json(await cli(["cdn", "list", "--json"], { env }));
  assert.deepEqual(
    list.nodes.map((x: { region: string; up: boolean; pid: number }) => [x.region, x.up, x.pid]),
    [["eu-west-1", true, restarted.pid]],
  );
});

test("monitor shows the node's hit ratio, req/s, bytes and origin health", async () => {
  for (let i = 0; i < 5; i++) await (await fetch(`${nodeUrl}/a`)).text();
  const m = json(await cli(["monitor", "--once", "--json"], { env }));
  const row = m.services.find((s: { name: string }) => s.name === "cdn-eu-west-1");
  assert.equal(row.state, "running");
  assert.ok(row.stats.hitRatio > 0.5, JSON.stringify(row.stats));
  assert.equal(typeof row.stats.reqPerSec, "number");
  assert.ok(row.stats.bytesServed > 0);
  assert.equal(row.stats.originHealthy, 1);
  const human = await cli(["monitor", "--once"], { env });
  assert.match(human.stdout, /cdn-eu-west-1\s+running/);
});

test("cdn remove stops the node for good (no restart) and forgets it", async () => {
  const pid = (await unit()).pid;
  const r = await cli(["cdn", "remove", "--region", "eu-west-1", "--json"], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(json(r).stopped, true);
  await until("gone", async () => !pidAlive(pid));
  await new Promise((res) => setTimeout(res, 500));
  await assert.rejects(fetch(`${nodeUrl}/a`));
  assert.deepEqual(json(await cli(["cdn", "list", "--json"], { env })).nodes, []);
});
