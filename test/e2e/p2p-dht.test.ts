/**
 * The p2p service with its DHT (p2p.dht), three services in this process on loopback, no tracker anywhere and
 * magnets that name neither a peer (x.pe) nor a tracker (tr), so the DHT is the only way to find anyone:
 * C runs as `p2p start --bootstrap` (the flags file the start op writes), A and B list C in p2p.bootstrapNodes.
 * (a) B fetches A's publish by magnet; (b) aria2c, told only C's DHT address, fetches it too and the sha256
 * matches; (c) A's private torrent is never announced (no DHT node holds a peer for it). Also: the `p2p status`
 * detail lines and the monitor row carry the DHT figures, and a stopped service's routing table is saved under
 * <p2p data dir>/dht/.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { type Config, configSchema } from "../../src/config.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { runtimePaths } from "../../src/core/paths.ts";
import type { ServiceHandle } from "../../src/core/service.ts";
import { renderFrame } from "../../src/monitor/render.ts";
import { Dht } from "../../src/p2p/dht/dht.ts";
import { p2pService } from "../../src/p2p/service.ts";
import { freePort } from "../../src/test/cli.ts";
import { installed } from "../../src/test/p2p.ts";

const hasAria2 = installed("aria2c");

const root = mkdtempSync(join(tmpdir(), "p2p-dht-"));
const running: ServiceHandle[] = [];
after(async () => {
  for (const h of running) await h.close().catch(() => {});
  rmSync(root, { recursive: true, force: true });
});

interface Svc {
  home: string;
  api: string;
  port: number;
  dhtPort: number;
  handle: ServiceHandle;
  config: Config;
}

async function startP2p(name: string, o: { bootstrap?: boolean; bootstrapNodes?: string[] }): Promise<Svc> {
  const home = join(root, name);
  const paths = runtimePaths(home);
  const port = await freePort();
  const apiPort = await freePort();
  const config = configSchema.parse({
    p2p: {
      enabled: true,
      host: "127.0.0.1",
      port,
      apiPort,
      tracker: { enabled: false },
      bootstrapNodes: o.bootstrapNodes ?? [],
    },
  });
  if (o.bootstrap) writeFileSync(join(paths.run, "p2p.flags.json"), JSON.stringify({ bootstrap: true }));
  const handle = await p2pService.start(config, { paths, log: silentLogger });
  running.push(handle);
  // p2p.dht.port is null: the DHT answers on the peer port (UDP).
  return { home, api: handle.url, port, dhtPort: port, handle, config };
}

async function call(s: Svc, path: string, body?: unknown): Promise<any> {
  const r = await fetch(`${s.api}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(40_000),
  });
  const j = await r.json();
  assert.equal(r.status, 200, JSON.stringify(j));
  return j;
}

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

test("DHT only: B and aria2c fetch A's magnet through a --bootstrap node; a private torrent is never announced", {
  timeout: 45_000,
}, async (t) => {
  const c = await startP2p("c", { bootstrap: true });
  const entry = `127.0.0.1:${c.dhtPort}`;
  const a = await startP2p("a", { bootstrapNodes: [entry] });
  const b = await startP2p("b", { bootstrapNodes: [entry] });

  const cStatus = await call(c, "/api/p2p/status");
  assert.equal(cStatus.bootstrap, true);
  assert.deepEqual(cStatus.sources, ["dht"]);
  assert.equal(cStatus.dht.port, c.dhtPort, "the bootstrap node answers on the peer port (UDP)");

  const data = randomBytes(300 * 1024 + 123);
  const file = join(root, "shared.bin");
  writeFileSync(file, data);
  const pub = await call(a, "/api/p2p/publish", { path: file, version: "v1" });
  // Only the infohash: no x.pe, no tr.
  const magnet = `magnet:?xt=urn:btih:${pub.infohash}`;
  assert.ok(pub.magnet.includes("x.pe="), "sanity: the published magnet would have named A; ours does not");
  assert.ok((await call(c, "/_ami/stats")).dht_stored_peers >= 1, "A announced its publish to the bootstrap node");

  // (a) B: by magnet, through the DHT.
  const t0 = Date.now();
  const got = await call(b, "/api/p2p/fetch", { source: magnet, wait: true });
  assert.equal(got.complete, true);
  assert.equal(got.size, data.length);
  const ls = await call(b, "/api/p2p/ls");
  assert.equal(ls[0].infohash, pub.infohash);

  t.diagnostic(`B fetched by magnet in ${Date.now() - t0} ms`);
  const t1 = Date.now();
  // (b) aria2c with only our DHT as its way in.
  if (hasAria2) {
    const dir = join(root, "aria");
    mkdirSync(dir);
    const [ariaPort, ariaDht] = [await freePort(), await freePort()];
    let aria: ChildProcess | undefined;
    const code = await new Promise<number | null>((resolve) => {
      aria = spawn(
        "aria2c",
        [
          "--enable-dht=true",
          "--enable-dht6=false",
          `--dht-entry-point=${entry}`,
          `--dht-listen-port=${ariaDht}`,
          `--dht-file-path=${join(dir, "dht.dat")}`,
          `--listen-port=${ariaPort}`,
          "--bt-enable-lpd=false",
          "--enable-peer-exchange=false",
          "--seed-time=0",
          "--bt-save-metadata=false",
          "--summary-interval=0",
          "--console-log-level=warn",
          `--dir=${dir}`,
          magnet,
        ],
        { stdio: ["ignore", "ignore", "inherit"] },
      );
      // aria2 paces itself (6 s to its first get_peers, 10 s choke rounds): ~25 s on loopback.
      const t = setTimeout(() => aria?.kill(), 38_000);
      aria.on("exit", (code) => {
        clearTimeout(t);
        resolve(code);
      });
    });
    assert.equal(code, 0, "aria2c completed");
    assert.equal(sha256(readFileSync(join(dir, "shared.bin"))), sha256(data));
    assert.ok((await call(c, "/api/p2p/status")).dht.queriesIn >= 1);
  } else t.diagnostic("aria2c is not installed (Debian: aria2): part (b) not run");

  t.diagnostic(`aria2c done in ${Date.now() - t1} ms`);
  // (c) A private torrent: trackers only (BEP 27); the DHT never hears of it.
  const secret = join(root, "secret.bin");
  writeFileSync(secret, randomBytes(40 * 1024));
  const priv = await call(a, "/api/p2p/publish", { path: secret, version: "v1", private: true });
  const probe = new Dht({ host: "127.0.0.1", bootstrap: [entry] });
  try {
    await probe.start();
    await probe.bootstrap();
    // Ask the whole network (C, A, B and aria2's node if it is still up); the public one proves the probe works.
    const peersOf = async (hex: string) => {
      const out: string[] = [];
      for await (const p of probe.lookup(Buffer.from(hex, "hex"), AbortSignal.timeout(5000))) out.push(`${p.port}`);
      return out;
    };
    assert.ok((await peersOf(pub.infohash)).includes(String(a.port)), "the probe finds A for the public torrent");
    assert.deepEqual(await peersOf(priv.infohash), [], "nobody holds a peer for the private torrent");
  } finally {
    await probe.stop();
  }
  const cFig = await call(c, "/_ami/stats");
  assert.ok(cFig.dht_nodes >= 2, JSON.stringify(cFig));
  // What `p2p status` prints under the state line, and the monitor's row.
  const detail = (await p2pService.statusDetail?.(c.config)) ?? [];
  assert.match(detail.join("\n"), /DHT on UDP \d+ \(bootstrap node\): [2-9]\d* nodes .*1 infohashes/);
  const row = { name: "p2p", kind: "service" as const, state: "running" as const, pid: 1, uptimeS: 1, restarts: 0 };
  const frame = renderFrame(
    {
      at: "now",
      supervisor: { running: true, pid: 1, cpuPercent: 0, rssBytes: 0 },
      alerts: null,
      services: [{ ...row, url: c.api, cpuPercent: 0, rssBytes: 0, stats: cFig, federation: [] }],
    },
    false,
  );
  assert.match(frame, /dht_nodes=\d+ {2}dht_good_nodes=\d+ {2}dht_infohashes=1 {2}dht_stored_peers=\d+/);
  // Good = answered a query of ours: C only answers, A asked C.
  assert.ok((await call(a, "/_ami/stats")).dht_good_nodes >= 1);
  assert.equal(cFig.dht_infohashes, 1, "only the public torrent is stored on the bootstrap node");

  // The routing table survives a restart: stop A, its table is on disk with C in it.
  await a.handle.close();
  running.splice(running.indexOf(a.handle), 1);
  const saved = join(a.home, "data", "p2p", "dht", "dht.json");
  assert.ok(existsSync(saved));
  const nodes = (JSON.parse(readFileSync(saved, "utf8")) as { nodes: { port: number }[] }).nodes;
  assert.ok(
    nodes.some((n) => n.port === c.dhtPort),
    "C is in A's saved table",
  );
});
