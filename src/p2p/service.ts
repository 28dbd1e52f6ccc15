/**
 * The `p2p` service: one P2pNode (peer wire on p2p.port, the built-in tracker on p2p.tracker.port) and a small
 * control API on the project's HTTP kit that the `p2p ...` ops call: GET /health, /_ami/stats, /api/p2p/ls,
 * /api/p2p/peers; POST /api/p2p/publish, /fetch, /pin, /unpin. Extra discovery sources (the DHT) plug in
 * through `p2pSources`.
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
  startFlags: { bootstrap: "also act as a DHT bootstrap node for others (with the DHT source)" },
  describe: (c) => [
    `p2p: peer wire on ${c.p2p.host}:${c.p2p.port}${c.p2p.tracker.enabled ? `, tracker on ${c.p2p.tracker.host}:${c.p2p.tracker.port}` : ""}, API ${apiUrl(c)}`,
    "  share: ami-streams p2p publish <file|folder>; get: ami-streams p2p fetch <magnet|.torrent|infohash>",
  ],
  async start(config, { log, paths }) {
    const c = config.p2p;
    const flags = readFlags(paths);
    const sources = await Promise.all(p2pSources.map((f) => f(config, flags)));
    const node = new P2pNode({
      dataDir: c.dataDir ?? join(paths.data, "p2p"),
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
    await node.start();
    const listener = createHttpListener({
      name: "p2p api",
      log,
      handler: (req, res, t) => handle(node, req, res, t.pathname, flags),
    });
    await listener.listen(c.apiPort, c.apiHost);
    return {
      url: apiUrl(config),
      close: async () => {
        await node.close();
        await listener.close();
      },
    };
  },
};

async function handle(
  node: P2pNode,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  flags: { bootstrap: boolean },
): Promise<void> {
  try {
    if (req.method === "GET") {
      if (path === "/health") return sendJson(res, 200, { ok: true });
      if (path === "/_ami/stats") return sendJson(res, 200, keyFigures(node));
      if (path === "/api/p2p/status") return sendJson(res, 200, { ...node.stats(), ...flags });
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

/** Flat numbers for the monitor: peers, rates, torrents (seeding / downloading), bans, tracker load. */
function keyFigures(node: P2pNode): Record<string, number> {
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
  };
}
