/**
 * The `p2p` service: one P2pNode (peer wire on p2p.port, the built-in tracker on p2p.tracker.port) and a small
 * control API on the project's HTTP kit that the `p2p ...` ops call: GET /health, /_ami/stats, /api/p2p/ls,
 * /api/p2p/peers; POST /api/p2p/publish, /fetch, /pin, /unpin. With `p2p.dht.enabled` it also runs the mainline
 * DHT (dht-source.ts) as a source for public torrents, on UDP `p2p.dht.port` (null: the peer port), its routing
 * table kept in <p2p data dir>/dht/. Other discovery sources plug in through `p2pSources`.
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { join } from "node:path";
import { openStore } from "../cas/open.ts";
import { PIN } from "../cas/types.ts";
import type { Config } from "../config.ts";
import { AmiError, toAmiError } from "../core/errors.ts";
import { baseUrl, isWildcardHost } from "../core/http/address.ts";
import { readJson } from "../core/http/body.ts";
import { sendError, sendJson } from "../core/http/reply.ts";
import { createHttpListener } from "../core/http/server.ts";
import type { RuntimePaths } from "../core/paths.ts";
import type { ServiceDef } from "../core/service.ts";
import { type DhtSource, dhtFor } from "./dht-source.ts";
import type { PeerAddress, PeerDiscovery } from "./discovery.ts";
import { parseHostPort } from "./magnet.ts";
import { P2pNode } from "./node.ts";

/**
 * Discovery sources added to every node this process starts (the DHT registers a factory here). Each gets the
 * config and the start flags (`bootstrap`).
 */
export const p2pSources: ((c: Config, flags: { bootstrap: boolean }) => PeerDiscovery | Promise<PeerDiscovery>)[] = [];

export const apiUrl = (c: Config): string =>
  baseUrl("http", isWildcardHost(c.p2p.apiHost) ? "127.0.0.1" : c.p2p.apiHost, c.p2p.apiPort);

function addrs(list: string[]): PeerAddress[] {
  return list.map((s) => parseHostPort(s)).filter((a): a is PeerAddress => !!a);
}

function readFlags(paths: RuntimePaths): { bootstrap: boolean } {
  const f = join(paths.run, "p2p.flags.json");
  if (!existsSync(f)) return { bootstrap: false };
  const flags = JSON.parse(readFileSync(f, "utf8")) as { bootstrap?: boolean };
  rmSync(f, { force: true });
  return { bootstrap: flags.bootstrap === true };
}

export const p2pService: ServiceDef = {
  name: "p2p",
  summary: "P2P node: BitTorrent swarming (v1/v2/hybrid, magnets, PEX) with pieces in the CAS, built-in tracker",
  enabled: (c) => c.p2p.enabled,
  baseUrl: apiUrl,
  startFlags: {
    bootstrap:
      "be a DHT bootstrap node: answer on the fixed DHT port (p2p.dht.port, else p2p.port) and keep the node id across restarts; needs no p2p.bootstrapNodes itself, other nodes list this host:port in theirs",
  },
  describe: (c) => [
    `p2p: peer wire on ${c.p2p.host}:${c.p2p.port}${c.p2p.tracker.enabled ? `, tracker on ${c.p2p.tracker.host}:${c.p2p.tracker.port}` : ""}, API ${apiUrl(c)}`,
    c.p2p.dht.enabled
      ? `  DHT on UDP ${c.p2p.host}:${c.p2p.dht.port ?? c.p2p.port}${c.p2p.dht.readOnly ? " (read-only)" : ""}, bootstrap nodes: ${c.p2p.bootstrapNodes.join(", ") || "none"}; a node started with --bootstrap is one: others list <this host>:${c.p2p.dht.port ?? c.p2p.port} in p2p.bootstrapNodes`
      : "  DHT off (p2p.dht.enabled: false)",
    "  share: ami-streams p2p publish <file|folder>; get: ami-streams p2p fetch <magnet|.torrent|infohash>",
  ],
  async statusDetail(config) {
    const r = await fetch(`${apiUrl(config)}/api/p2p/status`, { signal: AbortSignal.timeout(2000) });
    return statusLines((await r.json()) as StatusBody);
  },
  async start(config, { log, paths }) {
    const c = config.p2p;
    const flags = readFlags(paths);
    const sources = await Promise.all(p2pSources.map((f) => f(config, flags)));
    const dataDir = c.dataDir ?? join(paths.data, "p2p");
    let dht: DhtSource | undefined;
    if (c.dht.enabled) {
      dht = dhtFor(config, { stateDir: join(dataDir, "dht"), log, bootstrap: flags.bootstrap });
      await dht.dht.start();
      sources.push(dht);
      const a = dht.dht.address;
      if (flags.bootstrap)
        log.info("p2p: DHT bootstrap node: other nodes can list it in p2p.bootstrapNodes", { address: a });
      else if (!c.bootstrapNodes.length && dht.dht.table.size === 0)
        log.warn(
          "p2p: the DHT has no bootstrap nodes (p2p.bootstrapNodes) and no saved table: it learns nodes only from peers",
        );
    }
    const node = new P2pNode({
      dataDir,
      cas: openStore({ config, paths }),
      log,
      host: c.host,
      port: c.port,
      maxPeers: c.maxPeers,
      uploadLimit: c.uploadLimit,
      downloadLimit: c.downloadLimit,
      peers: addrs(c.peers),
      sources,
      resume: true,
      // The handshake's DHT bit and the PORT message tell peers where our DHT answers; theirs joins our table.
      dhtPort: dht && !c.dht.readOnly ? dht.dht.address?.port : undefined,
      onDhtPort: dht ? (p) => dht.heardPort(p) : undefined,
      tracker: c.tracker.enabled
        ? {
            port: c.tracker.port,
            host: c.tracker.host,
            open: c.tracker.open,
            publicHost: c.tracker.announceHost ?? undefined,
            intervalSec: c.tracker.intervalSeconds,
          }
        : undefined,
    });
    try {
      await node.start();
    } catch (e) {
      await dht?.dht.stop();
      throw e;
    }
    const listener = createHttpListener({
      name: "p2p api",
      log,
      handler: (req, res, t) => handle(node, dht, req, res, t.pathname, flags),
    });
    await listener.listen(c.apiPort, c.apiHost);
    return {
      url: apiUrl(config),
      close: async () => {
        await node.close();
        await dht?.dht.stop(); // saves the routing table
        await listener.close();
      },
    };
  },
};

async function handle(
  node: P2pNode,
  dht: DhtSource | undefined,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  flags: { bootstrap: boolean },
): Promise<void> {
  try {
    if (req.method === "GET") {
      if (path === "/health") return sendJson(res, 200, { ok: true });
      if (path === "/_ami/stats") return sendJson(res, 200, keyFigures(node, dht));
      if (path === "/api/p2p/status")
        return sendJson(res, 200, { ...node.stats(), ...flags, dht: dht ? dhtFigures(dht) : null });
      if (path === "/api/p2p/dht/nodes") return sendJson(res, 200, dht?.dht.nodes() ?? []);
      if (path === "/api/p2p/ls")
        return sendJson(
          res,
          200,
          [...node.torrents.values()].map((t) => t.stats()),
        );
      if (path === "/api/p2p/peers")
        return sendJson(
          res,
          200,
          [...node.torrents.values()].flatMap((t) => t.peerList().map((p) => ({ torrent: t.name, ...p }))),
        );
    }
    if (req.method === "POST") {
      const body = (await readJson(req, 64 * 1024)) as Record<string, unknown>;
      if (path === "/api/p2p/publish") {
        const r = await node.publish(String(body.path), {
          version: body.version as "v1" | "v2" | "hybrid" | undefined,
          private: body.private === true ? true : undefined,
          pieceLength: typeof body.pieceLength === "number" ? body.pieceLength : undefined,
          trackers: Array.isArray(body.trackers) ? body.trackers.map(String) : undefined,
        });
        return sendJson(res, 200, r);
      }
      if (path === "/api/p2p/fetch") {
        const src = String(body.source);
        const t = node.add(existsSync(src) ? readFileSync(src) : src, addrs((body.peers as string[]) ?? []));
        if (body.wait === true) await t.done();
        return sendJson(res, 200, t.stats());
      }
      if (path === "/api/p2p/pin" || path === "/api/p2p/unpin") {
        const t = node.find(String(body.torrent));
        const cas = (node as unknown as { o: { cas: import("../cas/types.ts").CasStore } }).o.cas;
        const ids = (t.storage?.fileIds ?? []).filter((x): x is string => !!x);
        if (path === "/api/p2p/pin") {
          if (!t.complete) throw new AmiError("AMI_INVALID_INPUT", `${t.name} is not complete yet`);
          for (const id of ids) await cas.hold(id, PIN);
        } else {
          for (const id of ids) await cas.release(id, PIN).catch(() => {});
          await node.remove(t.hex, true);
          dht?.forget(Buffer.from(t.hex, "hex"));
        }
        return sendJson(res, 200, { torrent: t.hex, name: t.name, objects: ids });
      }
    }
    throw new AmiError("M_NOT_FOUND", `no route ${req.method} ${path}`);
  } catch (e) {
    const err = toAmiError(e);
    sendError(res, err);
  }
}

type StatusBody = ReturnType<P2pNode["stats"]> & { bootstrap: boolean; dht: ReturnType<typeof dhtFigures> | null };

/** `p2p status`'s extra lines: the torrents and the DHT. */
export function statusLines(s: StatusBody): string[] {
  const kib = (n: number) => `${Math.round(n / 1024)} KiB/s`;
  const d = s.dht;
  return [
    `${s.torrents} torrents, ${s.peers} peers, ↓${kib(s.downloadRate)} ↑${kib(s.uploadRate)}, sources: ${s.sources.join(", ") || "trackers only"}`,
    d
      ? `DHT on UDP ${d.port}${s.bootstrap ? " (bootstrap node)" : ""}${d.readOnly ? " (read-only)" : ""}: ${d.tableSize} nodes (${d.goodNodes} good), ` +
        `${d.storedPeers} peers stored for ${d.infohashes} infohashes, ${d.lookups} lookups, ${d.announces} announces`
      : "DHT off",
  ];
}

/** The DHT's figures for status and the monitor (Dht.stats() without the per-query detail). */
function dhtFigures(d: DhtSource) {
  const s = d.dht.stats();
  return {
    port: s.address?.port ?? 0,
    readOnly: d.dht.o.readOnly === true,
    tableSize: s.tableSize,
    goodNodes: s.goodNodes,
    infohashes: s.infohashes,
    storedPeers: s.storedPeers,
    lookups: s.lookups,
    announces: s.announces,
    reannounces: d.reannounces,
    queriesIn: Object.values(s.queriesIn).reduce((a, b) => a + b, 0),
    timeouts: s.timeouts,
  };
}

/** Flat numbers for the monitor: peers, rates, torrents (seeding / downloading), bans, tracker load, DHT. */
function keyFigures(node: P2pNode, dht: DhtSource | undefined): Record<string, number> {
  const d = dht ? dhtFigures(dht) : undefined;
  const list = [...node.torrents.values()].map((t) => t.stats());
  const sum = (f: (t: (typeof list)[number]) => number) => list.reduce((s, t) => s + f(t), 0);
  return {
    torrents: list.length,
    seeding: list.filter((t) => t.complete).length,
    downloading: list.filter((t) => !t.complete).length,
    peers: sum((t) => t.peers),
    download_bytes_per_second: Math.round(sum((t) => t.downloadRate)),
    upload_bytes_per_second: Math.round(sum((t) => t.uploadRate)),
    downloaded_bytes: sum((t) => t.downloaded),
    uploaded_bytes: sum((t) => t.uploaded),
    hash_failures: sum((t) => t.hashFailures),
    banned_peers: node.banned.size,
    tracker_swarms: node.tracker?.swarms.size ?? 0,
    tracker_announces: node.tracker?.announces ?? 0,
    ...(d
      ? {
          dht_nodes: d.tableSize,
          dht_good_nodes: d.goodNodes,
          dht_infohashes: d.infohashes,
          dht_stored_peers: d.storedPeers,
          dht_lookups: d.lookups,
          dht_announces: d.announces,
          dht_queries_in: d.queriesIn,
        }
      : {}),
  };
}
