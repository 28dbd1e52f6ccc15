/**
 * Server discovery's steps (spec "Resolving server names"). DNS SRV answers and well-known documents come from a
 * table here: the machines have no DNS zone or HTTPS names to serve them from; the steps' order and the
 * Host header / port each yields is what is tested.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { matrixSchema } from "../config.ts";
import { Discovery, type DiscoveryDeps, realDiscoveryDeps } from "./discovery.ts";

function deps(
  srv: Record<string, [string, number][]>,
  wellKnown: Record<string, string>,
  calls: string[],
): DiscoveryDeps {
  return {
    async srv(name) {
      calls.push(`srv ${name}`);
      return (srv[name] ?? []).map(([n, port], i) => ({ name: n, port, priority: i, weight: 0 }));
    },
    async wellKnown(host) {
      calls.push(`wk ${host}`);
      if (host === "broken.test") throw new Error("connection refused");
      return wellKnown[host] ?? null;
    },
  };
}

const cfg = (hostMap: Record<string, string> = {}) =>
  matrixSchema.parse({ federation: { enabled: true, hostMap } }).federation;

test("discovery follows the spec's order; the host map comes first", async () => {
  const calls: string[] = [];
  const d = new Discovery(
    cfg({ "hs1.test": "http://127.0.0.1:1234", "hs2.test": "[::1]:8448" }),
    deps(
      {
        "_matrix-fed._tcp.srv.test": [["fed.srv.test.", 8443]],
        "_matrix._tcp.legacy.test": [["old.legacy.test", 8000]],
        "_matrix-fed._tcp.delegated.host": [["target.host", 9000]],
      },
      { "wk.test": "delegated.host", "wkport.test": "m.wkport.test:443", "wkip.test": "10.0.0.9" },
      calls,
    ),
  );
  const r = async (n: string) => {
    const x = await d.resolve(n);
    return [x.host, x.port, x.tls, x.hostHeader, x.via];
  };
  assert.deepEqual(await r("hs1.test"), ["127.0.0.1", 1234, false, "hs1.test", "hostMap"]);
  assert.deepEqual(await r("hs2.test"), ["::1", 8448, true, "hs2.test", "hostMap"]);
  assert.deepEqual(calls, [], "no lookups for mapped names");
  assert.deepEqual(await r("192.0.2.1"), ["192.0.2.1", 8448, true, "192.0.2.1", "ip"]);
  assert.deepEqual(await r("[2001:db8::1]:8000"), ["2001:db8::1", 8000, true, "[2001:db8::1]:8000", "ip"]);
  assert.deepEqual(await r("port.test:1234"), ["port.test", 1234, true, "port.test:1234", "port"]);
  assert.deepEqual(calls, [], "no lookups for IP literals and explicit ports");
  assert.deepEqual(await r("wkport.test"), ["m.wkport.test", 443, true, "m.wkport.test:443", "well-known"]);
  assert.deepEqual(await r("wkip.test"), ["10.0.0.9", 8448, true, "10.0.0.9", "well-known"]);
  assert.deepEqual(await r("wk.test"), ["target.host", 9000, true, "delegated.host", "srv"]);
  assert.deepEqual(await r("srv.test"), ["fed.srv.test", 8443, true, "srv.test", "srv"]);
  assert.deepEqual(await r("legacy.test"), ["old.legacy.test", 8000, true, "legacy.test", "srv-legacy"]);
  assert.deepEqual(await r("plain.test"), ["plain.test", 8448, true, "plain.test", "default"]);
  assert.deepEqual(await r("broken.test"), ["broken.test", 8448, true, "broken.test", "default"]);
  // Well-known answers (and their absence) are cached.
  calls.length = 0;
  await r("wk.test");
  await r("plain.test");
  assert.deepEqual(calls, [
    "srv _matrix-fed._tcp.delegated.host",
    "srv _matrix-fed._tcp.plain.test",
    "srv _matrix._tcp.plain.test",
  ]);
  await assert.rejects(d.resolve("bad name"), /not a server name/);
});

test("the real well-known fetch never reaches private or loopback addresses; isolated mode fetches nothing", async () => {
  await assert.rejects(realDiscoveryDeps(cfg()).wellKnown("127.0.0.1"), (e: any) => e.code === "M_FORBIDDEN");
  await assert.rejects(realDiscoveryDeps(cfg()).wellKnown("localhost"), (e: any) => e.code === "M_FORBIDDEN");
  const isolated = matrixSchema.parse({}).federation;
  assert.equal(await realDiscoveryDeps(isolated).wellKnown("127.0.0.1"), null);
});
