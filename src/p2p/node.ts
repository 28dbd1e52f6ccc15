/**
 * A P2P node: one TCP listener for the peer wire (incoming handshakes are routed to their torrent), the
 * torrents it seeds and fetches, the discovery sources they share (static peers, and whatever is plugged in
 * with `addSource`, e.g. the DHT), an optional built-in tracker, and their state under the data dir:
 * <data>/torrents/<infohash>.torrent + .json (the CAS ids of a completed download), <data>/partial/ (in progress).
 */
import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { basename, join } from "node:path";
import type { CasStore } from "../cas/types.ts";
import { AmiError, toAmiError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import { encode } from "./bencode.ts";
import { type CreateOptions, createTorrent, listSource } from "./create.ts";
import type { PeerAddress, PeerDiscovery } from "./discovery.ts";
import { magnetOf, magnetWireHash, parseMagnet } from "./magnet.ts";
import { type Metainfo, parseTorrent, wireHash } from "./metainfo.ts";
import { StaticDiscovery } from "./static.ts";
import { holdName } from "./storage.ts";
import { RateLimiter } from "./swarm/ratelimit.ts";
import { type NodeContext, Torrent } from "./swarm/torrent.ts";
import { HttpTracker } from "./tracker-client.ts";
import { TrackerServer } from "./tracker-server.ts";
import { PeerWire } from "./wire/peer.ts";

export interface P2pNodeOptions {
  dataDir: string;
  cas: CasStore;
  log: Logger;
  host?: string;
  /** 0: any free port. */
  port?: number;
  maxPeers?: number;
  /** Bytes per second, 0 = unlimited. */
  uploadLimit?: number;
  downloadLimit?: number;
  /** Static peers every public torrent asks. */
  peers?: PeerAddress[];
  /** More discovery sources (the DHT). */
  sources?: PeerDiscovery[];
  chokeIntervalMs?: number;
  announceIntervalMs?: number;
  /** Built-in tracker: port (0 = any) and whether it tracks any infohash or only ours. */
  tracker?: { port: number; host?: string; open?: boolean; publicHost?: string; intervalSec?: number };
  dhtPort?: number;
  onDhtPort?: (peer: PeerAddress) => void;
  /** Load torrents saved under the data dir on start (the service does; tests usually not). */
  resume?: boolean;
}

export interface PublishResult {
  infohash: string;
  infohashV2?: string;
  name: string;
  size: number;
  pieces: number;
  magnet: string;
  torrentFile: string;
  fileIds: (string | null)[];
}

export class P2pNode {
  readonly peerId = Buffer.concat([Buffer.from("-AM0100-"), randomBytes(12)]);
  readonly torrents = new Map<string, Torrent>();
  readonly banned = new Set<string>();
  readonly sources: PeerDiscovery[] = [];
  port = 0;
  trackerUrl: string | undefined;
  tracker: TrackerServer | undefined;
  private readonly o: P2pNodeOptions;
  private server: Server | undefined;
  private ctx!: NodeContext;

  constructor(o: P2pNodeOptions) {
    this.o = o;
    if (o.peers?.length) this.sources.push(new StaticDiscovery(o.peers));
    this.sources.push(...(o.sources ?? []));
  }

  /** Plug in another discovery source (the DHT) for every public torrent. */
  addSource(s: PeerDiscovery): void {
    this.sources.push(s);
  }

  async start(): Promise<number> {
    const host = this.o.host ?? "0.0.0.0";
    const server = createServer((s) => void this.incoming(s));
    server.maxConnections = (this.o.maxPeers ?? 50) * 4;
    await new Promise<void>((resolve, reject) => {
      server.once("error", (e: NodeJS.ErrnoException) =>
        reject(
          new AmiError("AMI_UNAVAILABLE", `p2p: cannot listen on ${host}:${this.o.port ?? 0}: ${e.code ?? e.message}`),
        ),
      );
      server.listen(this.o.port ?? 0, host, () => resolve());
    });
    this.server = server;
    const addr = server.address();
    this.port = typeof addr === "object" && addr ? addr.port : 0;
    if (this.o.tracker) {
      this.tracker = new TrackerServer({
        log: this.o.log,
        open: this.o.tracker.open ?? true,
        intervalSec: this.o.tracker.intervalSec ?? 60,
      });
      const th = this.o.tracker.host ?? host;
      const tport = await this.tracker.listen(this.o.tracker.port, th);
      const shown = this.o.tracker.publicHost ?? (th === "0.0.0.0" || th === "::" ? "127.0.0.1" : th);
      this.trackerUrl = `http://${shown.includes(":") ? `[${shown}]` : shown}:${tport}/announce`;
    }
    this.ctx = {
      peerId: this.peerId,
      port: this.port,
      cas: this.o.cas,
      dataDir: this.o.dataDir,
      log: this.o.log,
      maxPeers: this.o.maxPeers ?? 50,
      up: new RateLimiter(this.o.uploadLimit ?? 0),
      down: new RateLimiter(this.o.downloadLimit ?? 0),
      sources: () => this.sources,
      tracker: (url, t) =>
        new HttpTracker(url, this.peerId, () => ({
          uploaded: t.up.total,
          downloaded: t.down.total,
          left: t.storage?.left ?? 1,
        })),
      chokeIntervalMs: this.o.chokeIntervalMs ?? 10_000,
      announceIntervalMs: this.o.announceIntervalMs ?? 30_000,
      dhtPort: this.o.dhtPort,
      onDhtPort: this.o.onDhtPort,
      banned: this.banned,
    };
    if (this.o.resume) await this.resume();
    return this.port;
  }

  private async incoming(socket: Socket): Promise<void> {
    socket.on("error", () => {});
    try {
      const wire = await PeerWire.accept(socket, (ih) => this.byWireHash(ih)?.handshake(ih));
      this.byWireHash(wire.theirs.infohash)?.addPeer(wire);
    } catch (e) {
      this.o.log.debug(`p2p: incoming ${socket.remoteAddress}: ${toAmiError(e).message}`);
      socket.destroy();
    }
  }

  /** A torrent by the 20 bytes a peer sent: its key, or a hybrid's truncated v2 hash (a v2 magnet's). */
  private byWireHash(ih: Buffer): Torrent | undefined {
    const hex = ih.toString("hex");
    const v2 = (t: Torrent) => t.meta?.infohashV2?.subarray(0, 20).toString("hex") === hex;
    return this.torrents.get(hex) ?? [...this.torrents.values()].find(v2);
  }

  private dirs() {
    return { torrents: join(this.o.dataDir, "torrents") };
  }

  private async save(meta: Metainfo, torrentBytes: Buffer | undefined, fileIds?: (string | null)[]): Promise<string> {
    const dir = this.dirs().torrents;
    await mkdir(dir, { recursive: true });
    const hex = wireHash(meta).toString("hex");
    const file = join(dir, `${hex}.torrent`);
    // From a magnet: the info dict's own bytes wrapped in a dictionary keep the infohash.
    const bytes =
      torrentBytes ??
      Buffer.concat([
        Buffer.from("d8:announce"),
        Buffer.from(`${Buffer.byteLength(meta.trackers[0]?.[0] ?? "")}:${meta.trackers[0]?.[0] ?? ""}`),
        Buffer.from("4:info"),
        meta.infoBytes,
        // A v2 magnet's piece layers (fetched by hash requests) are needed again on resume.
        meta.version === "v2" && meta.pieceLayers.size
          ? Buffer.concat([Buffer.from("12:piece layers"), encode(layersDict(meta))])
          : Buffer.alloc(0),
        Buffer.from("e"),
      ]);
    await writeFile(file, bytes);
    if (fileIds) await writeFile(join(dir, `${hex}.json`), JSON.stringify({ fileIds, completedAt: Date.now() }));
    return file;
  }

  private async resume(): Promise<void> {
    const dir = this.dirs().torrents;
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const n of names.filter((x) => x.endsWith(".torrent"))) {
      try {
        const bytes = await readFile(join(dir, n));
        const meta = parseTorrent(bytes);
        const state = await readFile(join(dir, n.replace(/\.torrent$/, ".json")), "utf8").catch(() => null);
        const t = this.addMeta(meta);
        // Unfinished: the torrent picks up its verified pieces from <data>/partial/ (storage.ts `load`).
        if (state) await t.adopt((JSON.parse(state) as { fileIds: (string | null)[] }).fileIds);
        else this.watch(t, bytes, false);
      } catch (e) {
        this.o.log.warn(`p2p: cannot resume ${n}: ${toAmiError(e).message}`);
      }
    }
  }

  private addMeta(meta: Metainfo, extra: PeerAddress[] = []): Torrent {
    const hex = wireHash(meta).toString("hex");
    const have = this.torrents.get(hex);
    if (have) return have;
    if (this.trackerUrl) this.tracker?.allow(wireHash(meta));
    const t = new Torrent(this.ctx, { infohash: wireHash(meta), meta, trackers: [], peers: extra });
    this.torrents.set(hex, t);
    t.start();
    return t;
  }

  /** Persist a download: its .torrent now (or once a magnet's metadata arrives) so a restart resumes it, its CAS ids once complete. */
  private watch(t: Torrent, torrentBytes: Buffer | undefined, saveNow = true): void {
    const early = (meta: Metainfo) => void this.save(meta, torrentBytes).catch(() => {});
    if (saveNow && t.meta) early(t.meta);
    else if (saveNow) t.once("metadata", early);
    t.once("complete", () => {
      if (t.meta) void this.save(t.meta, torrentBytes, t.storage?.fileIds ?? []).catch(() => {});
    });
  }

  /** Hash a file or folder, store it in the CAS (held), write the .torrent, and seed it. */
  async publish(path: string, o: CreateOptions = {}): Promise<PublishResult> {
    const files = await listSource(path);
    const trackers = [...(o.trackers ?? [])];
    if (this.trackerUrl && !trackers.includes(this.trackerUrl)) trackers.unshift(this.trackerUrl);
    const { torrent, meta } = await createTorrent(files, o.name ?? basename(path), { ...o, trackers });
    const hold = holdName(meta);
    const real: string[] = [];
    for (const f of files) {
      const { createReadStream } = await import("node:fs");
      real.push((await this.o.cas.put(createReadStream(f.abs) as AsyncIterable<Buffer>, { hold })).id);
    }
    let k = 0;
    const fileIds = meta.files.map((f) => (f.pad ? null : (real[k++] ?? null)));
    const torrentFile = await this.save(meta, torrent, fileIds);
    const t = this.addMeta(meta);
    await t.adopt(fileIds);
    await Promise.race([t.announced, new Promise((r) => setTimeout(r, 5000).unref())]);
    return {
      infohash: wireHash(meta).toString("hex"),
      infohashV2: meta.infohashV2?.toString("hex"),
      name: meta.name,
      size: meta.totalLength,
      pieces: meta.pieceCount,
      magnet: magnetOf(meta, [{ host: "127.0.0.1", port: this.port }]),
      torrentFile,
      fileIds,
    };
  }

  /** Start fetching from .torrent bytes, a magnet link or a 40-hex infohash; resolves to the torrent. */
  add(source: Buffer | string, peers: PeerAddress[] = []): Torrent {
    if (Buffer.isBuffer(source)) {
      const meta = parseTorrent(source);
      const t = this.addMeta(meta, peers);
      if (!t.complete) this.watch(t, source);
      return t;
    }
    const m = /^[0-9a-fA-F]{40}$/.test(source)
      ? { infohashV1: Buffer.from(source, "hex"), trackers: [], peers: [] }
      : parseMagnet(source);
    const ih = magnetWireHash(m);
    const hex = ih.toString("hex");
    const have = this.torrents.get(hex);
    if (have) return have;
    const t = new Torrent(this.ctx, {
      infohash: ih,
      expect: { v1: m.infohashV1, v2: m.infohashV2 },
      trackers: [...m.trackers],
      peers: [...m.peers, ...peers],
      name: "name" in m ? m.name : undefined,
    });
    this.torrents.set(hex, t);
    this.watch(t, undefined);
    t.start();
    return t;
  }

  find(ref: string): Torrent {
    const hex = ref.toLowerCase();
    const t =
      this.torrents.get(hex) ?? [...this.torrents.values()].find((x) => x.hex.startsWith(hex) || x.name === ref);
    if (!t) throw new AmiError("AMI_INVALID_INPUT", `no torrent ${ref}`);
    return t;
  }

  /** Stop a torrent; `forget` also drops its saved state and releases its CAS hold. */
  async remove(ref: string, forget = false): Promise<void> {
    const t = this.find(ref);
    await t.stop();
    this.torrents.delete(t.hex);
    if (!forget) return;
    if (!t.complete) await t.storage?.discard();
    if (t.meta)
      for (const id of t.storage?.fileIds ?? []) if (id) await this.o.cas.release(id, holdName(t.meta)).catch(() => {});
    const dir = this.dirs().torrents;
    await rm(join(dir, `${t.hex}.torrent`), { force: true });
    await rm(join(dir, `${t.hex}.json`), { force: true });
  }

  stats() {
    const list = [...this.torrents.values()].map((t) => t.stats());
    return {
      port: this.port,
      tracker: this.trackerUrl,
      peerId: this.peerId.toString("latin1").slice(0, 8),
      sources: this.sources.map((s) => s.name),
      torrents: list.length,
      peers: list.reduce((s, t) => s + t.peers, 0),
      downloadRate: list.reduce((s, t) => s + t.downloadRate, 0),
      uploadRate: list.reduce((s, t) => s + t.uploadRate, 0),
      banned: this.banned.size,
    };
  }

  async close(): Promise<void> {
    for (const t of this.torrents.values()) await t.stop();
    this.torrents.clear();
    await this.tracker?.close();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

const layersDict = (meta: Metainfo): Record<string, Buffer> =>
  Object.fromEntries([...meta.pieceLayers].map(([hex, l]) => [Buffer.from(hex, "hex").toString("latin1"), l]));
