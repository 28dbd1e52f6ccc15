/**
 * `ami-streams p2p peers|publish|fetch|ls|pin|unpin` (MCP: p2p_publish, ...); `p2p start|stop|status|restart`
 * are the generated service ops. Each calls the running node's API (start it with `p2p start`).
 */
import { resolve } from "node:path";
import { z } from "zod";
import { AmiError } from "../core/errors.ts";
import { defineOp, type OpContext } from "../core/ops.ts";
import { apiUrl } from "./service.ts";

async function api(ctx: OpContext, path: string, body?: unknown, timeoutMs = 30_000): Promise<any> {
  const url = `${apiUrl(ctx.config)}${path}`;
  let r: Response;
  try {
    r = await fetch(url, {
      method: body === undefined ? "GET" : "POST",
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch {
    throw new AmiError("AMI_NOT_RUNNING", "the p2p node is not running (ami-streams p2p start)");
  }
  const json = (await r.json().catch(() => null)) as { errcode?: string; error?: string } | null;
  if (!r.ok)
    throw new AmiError((json?.errcode as "AMI_INVALID_INPUT") ?? "AMI_INTERNAL", json?.error ?? `HTTP ${r.status}`);
  return json;
}

const torrentView = z
  .object({
    infohash: z.string(),
    name: z.string(),
    size: z.number(),
    pieces: z.number(),
    have: z.number(),
    complete: z.boolean(),
    private: z.boolean(),
    peers: z.number(),
    downloadRate: z.number(),
    uploadRate: z.number(),
    downloaded: z.number(),
    uploaded: z.number(),
    hashFailures: z.number(),
  })
  .passthrough();
type TorrentView = z.infer<typeof torrentView>;
const line = (t: TorrentView) =>
  `${t.infohash.slice(0, 12)} ${t.name} ${t.complete ? "seeding" : `${t.pieces ? Math.floor((100 * t.have) / t.pieces) : 0}% (${t.have}/${t.pieces} pieces)`} ` +
  `${t.peers} peers ↓${Math.round(t.downloadRate / 1024)} KiB/s ↑${Math.round(t.uploadRate / 1024)} KiB/s`;

/** pin and unpin: which torrent, and the CAS objects of its files. */
const torrentRef = z.object({ torrent: z.string().min(1).describe("infohash (or prefix) or name") }).strict();
const torrentObjects = z.object({ torrent: z.string(), name: z.string(), objects: z.array(z.string()) });
export const p2pOps = [
  defineOp({
    name: "p2p.publish",
    positional: ["path"],
    summary: "Share a file or folder: store it in the CAS, write its .torrent, seed it; prints the magnet link",
    input: z
      .object({
        path: z.string().min(1).describe("file or folder"),
        version: z.enum(["v1", "v2", "hybrid"]).default("hybrid").describe("torrent version (BEP 52 v2, or both)"),
        private: z.boolean().default(false).describe("private torrent (BEP 27): trackers only, no DHT or PEX"),
        pieceLength: z.number().int().optional().describe("piece size in bytes (power of two >= 16384)"),
      })
      .strict(),
    output: z
      .object({ infohash: z.string(), name: z.string(), magnet: z.string(), torrentFile: z.string() })
      .passthrough(),
    annotations: { readOnly: false, destructive: false, idempotent: true, openWorld: false },
    human: (r) => `${r.name}: ${r.infohash}\n${r.magnet}\ntorrent: ${r.torrentFile}`,
    run: (i, ctx) => api(ctx, "/api/p2p/publish", { ...i, path: resolve(i.path) }, 600_000),
  }),
  defineOp({
    name: "p2p.fetch",
    positional: ["source"],
    summary: "Download by magnet link, .torrent file or infohash into the CAS (then seed it)",
    input: z
      .object({
        source: z.string().min(1).describe("magnet:?…, a .torrent path, or a 40-hex infohash"),
        peers: z.array(z.string()).default([]).describe("extra peers to ask (host:port)"),
        wait: z.boolean().default(false).describe("wait until the download completes"),
      })
      .strict(),
    output: torrentView,
    annotations: { readOnly: false, destructive: false, idempotent: true, openWorld: true },
    human: line,
    run: (i, ctx) =>
      api(
        ctx,
        "/api/p2p/fetch",
        { ...i, source: i.source.startsWith("magnet:") ? i.source : maybePath(i.source) },
        3_600_000,
      ),
  }),
  defineOp({
    name: "p2p.ls",
    summary: "List the node's torrents: progress, peers, rates",
    input: z.object({}).strict(),
    output: z.array(torrentView),
    annotations: { readOnly: true, destructive: false, idempotent: true },
    human: (l) => (l.length ? l.map(line).join("\n") : "no torrents"),
    run: (_i, ctx) => api(ctx, "/api/p2p/ls"),
  }),
  defineOp({
    name: "p2p.peers",
    summary: "List connected peers per torrent",
    input: z.object({}).strict(),
    output: z.array(z.object({ torrent: z.string(), address: z.string() }).passthrough()),
    annotations: { readOnly: true, destructive: false, idempotent: true },
    human: (l) => (l.length ? l.map((p) => `${p.torrent} ${p.address} ${p.client ?? ""}`).join("\n") : "no peers"),
    run: (_i, ctx) => api(ctx, "/api/p2p/peers"),
  }),
  defineOp({
    name: "p2p.pin",
    positional: ["torrent"],
    summary: "Pin a completed torrent's files in the CAS (kept by GC even after unpin of the torrent)",
    input: torrentRef,
    output: torrentObjects,
    annotations: { readOnly: false, destructive: false, idempotent: true },
    human: (r) => `pinned ${r.name} (${r.objects.length} objects)`,
    run: (i, ctx) => api(ctx, "/api/p2p/pin", i),
  }),
  defineOp({
    name: "p2p.unpin",
    positional: ["torrent"],
    summary: "Stop seeding a torrent, forget it and release its CAS holds (GC may then collect its files)",
    input: torrentRef,
    output: torrentObjects,
    annotations: { readOnly: false, destructive: true, idempotent: true },
    human: (r) => `unpinned ${r.name}`,
    run: (i, ctx) => api(ctx, "/api/p2p/unpin", i),
  }),
];

function maybePath(s: string): string {
  return /^[0-9a-fA-F]{40}$/.test(s) ? s : resolve(s);
}
