/**
 * One torrent in the swarm: its peers, what we ask them for (picker.ts), what we serve them (verified pieces
 * from storage.ts, under the node's upload limit), choking (choker.ts), peer discovery from every source the
 * node has (a private torrent only from its trackers), ut_metadata for magnets (metadata.ts) and PEX.
 */
import { EventEmitter } from "node:events";
import type { CasStore } from "../../cas/types.ts";
import { toAmiError } from "../../core/errors.ts";
import type { Logger } from "../../core/logger.ts";
import type { PeerAddress, PeerDiscovery } from "../discovery.ts";
import { type Metainfo, requestableSize } from "../metainfo.ts";
import { TorrentStorage } from "../storage.ts";
import { decodeExtHandshake, decodePex, encodeExtHandshake, encodePex, OUR_EXT } from "../wire/extension.ts";
import { Bits, type Handshake, MAX_BLOCK, type Message, Reserved } from "../wire/messages.ts";
import { PeerWire } from "../wire/peer.ts";
import { Choker, UPLOAD_SLOTS } from "./choker.ts";
import { LayerFetch, serveHashes } from "./hashes.ts";
import { MetadataFetch } from "./metadata.ts";
import { blockKey, MAX_QUEUED_REQUESTS, Peer } from "./peer.ts";
import { Picker } from "./picker.ts";
import { Rate, type RateLimiter } from "./ratelimit.ts";

export interface NodeContext {
  peerId: Buffer;
  /** Our TCP listen port (announced to trackers and in BEP 10 `p`). */
  port: number;
  cas: CasStore;
  dataDir: string;
  log: Logger;
  maxPeers: number;
  up: RateLimiter;
  down: RateLimiter;
  /** Sources every public torrent asks (static peers, DHT...). */
  sources: () => PeerDiscovery[];
  /** Trackers (by URL) as discovery sources. */
  tracker: (url: string, t: Torrent) => PeerDiscovery;
  chokeIntervalMs: number;
  announceIntervalMs: number;
  /** Our DHT port, sent in PORT messages to peers that set the DHT bit. */
  dhtPort?: number;
  /** A peer told us its DHT port (BEP 5 PORT): for the DHT to add as a node. */
  onDhtPort?: (peer: PeerAddress) => void;
  /** Peer ids and addresses refused (peers that sent corrupt pieces). */
  banned: Set<string>;
}

export interface TorrentInit {
  infohash: Buffer;
  meta?: Metainfo;
  /** For a magnet: full v1 / v2 hashes the fetched info dictionary must match. */
  expect?: { v1?: Buffer; v2?: Buffer };
  trackers: string[];
  peers: PeerAddress[];
  name?: string;
}

/**
 * Requests outstanding with one peer: about QUEUE_SECONDS of what it has been sending us, between PIPELINE_MIN
 * and PIPELINE blocks. A fixed deep queue tied half a small torrent to a slow (upload-capped) seed: pieces asked
 * of it could not be asked of the leechers that had them, and the seed ended up sending them all.
 */
const PIPELINE = 64;
const PIPELINE_MIN = 8;
const QUEUE_SECONDS = 1;
const SERVE_BACKLOG = 512 * 1024;
/** A seed refuses a peer a piece another peer holds at most this often, and for at most this long (nextServe). */
const SEED_REFUSALS = 2;
const SEED_DEFER_MS = 3000;

export class Torrent extends EventEmitter {
  readonly infohash: Buffer;
  meta: Metainfo | undefined;
  storage: TorrentStorage | undefined;
  picker: Picker<Peer> | undefined;
  readonly peers = new Map<Peer, true>();
  readonly known = new Map<string, PeerAddress>();
  readonly down = new Rate();
  readonly up = new Rate();
  readonly trackers: string[];
  name: string;
  error: string | undefined;
  hashFailures = 0;
  /** Requests refused as a seed because another peer holds the piece (nextServe). */
  refusals = 0;
  private readonly node: NodeContext;
  private readonly choker = new Choker();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly abort = new AbortController();
  private readonly dialing = new Set<string>();
  private metadata: MetadataFetch | undefined;
  /** A v2 magnet's piece layers being fetched (BEP 52 hash requests) before pieces can be checked. */
  private layers: LayerFetch | undefined;
  private readonly v2: boolean;
  private stopped = false;
  /** The first round of announces and lookups (publish waits for it, so a tracker knows us before we answer). */
  announced: Promise<void> = Promise.resolve();
  private finalizing = false;
  /** False until the pieces an earlier run verified are re-checked (storage.load); no requests before. */
  private loaded = false;

  constructor(node: NodeContext, init: TorrentInit) {
    super();
    this.node = node;
    this.infohash = init.infohash;
    this.trackers = init.trackers;
    this.name = init.meta?.name ?? init.name ?? init.infohash.toString("hex");
    for (const p of init.peers) this.known.set(`${p.host}:${p.port}`, p);
    this.v2 = !!(init.meta?.infohashV2 ?? init.expect?.v2);
    if (init.meta) this.setMeta(init.meta);
    else this.metadata = new MetadataFetch(init.infohash, init.expect ?? {});
  }

  get hex(): string {
    return this.infohash.toString("hex");
  }

  get complete(): boolean {
    return this.storage?.complete === true && this.storage.fileIds !== null;
  }

  get isPrivate(): boolean {
    return this.meta?.private === true;
  }

  /** `infohash`: the one the peer used (a hybrid is reached by its v1 hash or its truncated v2 one). */
  handshake(infohash = this.infohash): Handshake {
    return {
      reserved: Reserved.make({ dht: this.node.dhtPort !== undefined, fast: true, extended: true, v2: this.v2 }),
      infohash,
      peerId: this.node.peerId,
    };
  }

  private setMeta(meta: Metainfo): void {
    this.meta = meta;
    this.name = meta.name;
    this.storage = new TorrentStorage(meta, this.node.cas, this.node.dataDir);
    this.picker = new Picker<Peer>(meta, this.storage.have);
    for (const t of meta.trackers.flat()) if (!this.trackers.includes(t)) this.trackers.push(t);
    void this.loadLocal();
  }

  /** Resume an interrupted download from the pieces the temp file still proves it has. */
  private async loadLocal(): Promise<void> {
    const s = this.storage;
    if (!s) return;
    const kept = await s.load().catch((e) => {
      this.node.log.warn(`p2p: ${this.name}: cannot resume partial data: ${toAmiError(e).message}`);
      return [];
    });
    this.loaded = true;
    if (kept.length || s.recheckFailed)
      this.node.log.info(`p2p: ${this.name}: resumed ${kept.length} pieces, ${s.recheckFailed} failed the re-check`);
    for (const q of this.peers.keys()) for (const index of kept) q.wire.send({ type: "have", index });
    if (s.complete && !s.fileIds && kept.length) await this.finish();
    else for (const q of this.peers.keys()) this.updateInterest(q);
  }

  /** Seed what the CAS holds already. */
  async adopt(fileIds: (string | null)[]): Promise<void> {
    await this.storage?.adopt(fileIds);
  }

  start(): void {
    const tick = setInterval(() => this.tick(), 100);
    const choke = setInterval(() => this.rechoke(), this.node.chokeIntervalMs);
    const discover = setInterval(() => void this.discover(), this.node.announceIntervalMs);
    const pex = setInterval(() => this.sendPex(), 30_000);
    const keepalive = setInterval(() => {
      for (const p of this.peers.keys()) p.wire.send({ type: "keepalive" });
    }, 90_000);
    this.timers.push(tick, choke, discover, pex, keepalive);
    for (const t of this.timers) t.unref();
    this.announced = this.discover();
    this.connectKnown();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    for (const t of this.timers) clearInterval(t);
    for (const p of this.peers.keys()) p.wire.close("stopped");
    if (!this.complete) await this.storage?.close();
  }

  /** Resolves once every piece is stored and the files are CAS objects. */
  done(): Promise<void> {
    if (this.complete) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.once("complete", resolve);
      this.once("failed", reject);
    });
  }

  private sources(): PeerDiscovery[] {
    const trackers = this.trackers.filter((t) => /^https?:\/\//.test(t)).map((t) => this.node.tracker(t, this));
    return this.isPrivate ? trackers : [...trackers, ...this.node.sources()];
  }

  private async discover(): Promise<void> {
    if (this.stopped) return;
    await Promise.all(
      this.sources().map(async (s) => {
        try {
          await s.announce(this.infohash, this.node.port, this.abort.signal);
          for await (const p of s.lookup(this.infohash, this.abort.signal)) {
            this.known.set(`${p.host}:${p.port}`, p);
            this.connectKnown();
          }
        } catch (e) {
          if (!this.stopped) this.node.log.debug?.(`p2p: ${s.name} for ${this.name}: ${toAmiError(e).message}`);
        }
      }),
    );
  }

  /** Peers heard of elsewhere (ops, tests): remember them and dial while there is room. */
  addPeers(addrs: PeerAddress[]): void {
    for (const a of addrs) this.known.set(`${a.host}:${a.port}`, a);
    this.connectKnown();
  }

  private connectKnown(): void {
    // Seeds dial too: a leecher that cannot reach us (or will not dial, as some clients delay) still gets served.
    if (this.stopped) return;
    for (const [key, addr] of this.known) {
      if (this.peers.size + this.dialing.size >= this.node.maxPeers) return;
      if (this.dialing.has(key) || this.node.banned.has(key) || this.connectedTo(addr)) continue;
      if (addr.port === this.node.port && (addr.host === "127.0.0.1" || addr.host === "::1")) continue;
      this.dialing.add(key);
      PeerWire.connect(addr, this.handshake())
        .then((w) => this.addPeer(w, addr))
        .catch((e) => this.node.log.debug(`p2p: dial ${key}: ${toAmiError(e).message}`))
        .finally(() => this.dialing.delete(key));
    }
  }

  private connectedTo(a: PeerAddress): boolean {
    for (const p of this.peers.keys()) if (p.listen?.host === a.host && p.listen.port === a.port) return true;
    return false;
  }

  /** A connection past its handshake (incoming from the node's listener, or one we dialed). */
  addPeer(wire: PeerWire, dialed?: PeerAddress): void {
    const id = wire.theirs.peerId.toString("hex");
    const dupe = [...this.peers.keys()].some((p) => p.id === id);
    if (this.stopped || this.node.banned.has(id) || wire.theirs.peerId.equals(this.node.peerId) || dupe) {
      wire.close("refused");
      return;
    }
    if (this.peers.size >= this.node.maxPeers) {
      wire.close("too many peers");
      return;
    }
    const p = new Peer(wire, dialed);
    this.node.log.debug(`p2p: ${this.name}: peer ${wire.remote.host}:${wire.remote.port} connected`);
    this.peers.set(p, true);
    if (p.extended)
      this.sendExt(
        p,
        0,
        encodeExtHandshake({ metadataSize: this.meta?.infoBytes.length, port: this.node.port, pex: !this.isPrivate }),
      );
    this.sendHaves(p);
    if (p.dht && this.node.dhtPort) wire.send({ type: "port", port: this.node.dhtPort });
    this.layers?.peerReady(p, (m) => wire.send(m));
    // Ours first: what the peer already sent may make us answer, and BEP 10 wants our handshake before that.
    wire.start(
      (m) => this.onMessage(p, m),
      (why) => {
        this.node.log.debug(`p2p: ${this.name}: peer ${p.label} gone: ${why}`);
        this.dropPeer(p);
      },
    );
  }

  private sendHaves(p: Peer): void {
    const s = this.storage;
    if (!s) {
      if (p.fast) p.wire.send({ type: "haveNone" });
      return;
    }
    if (p.fast && s.complete) p.wire.send({ type: "haveAll" });
    else if (p.fast && s.haveCount === 0) p.wire.send({ type: "haveNone" });
    else if (s.haveCount > 0) p.wire.send({ type: "bitfield", bits: Buffer.from(s.have) });
  }

  private sendExt(p: Peer, ext: number, payload: Buffer): void {
    p.wire.send({ type: "extended", ext, payload });
  }

  private dropPeer(p: Peer): void {
    if (!this.peers.delete(p)) return;
    if (p.bits) this.picker?.addBitfield(p.bits, -1);
    this.picker?.release(p);
    this.metadata?.forget(p);
    this.layers?.forget(p);
    this.connectKnown();
  }

  private onMessage(p: Peer, m: Message): void {
    switch (m.type) {
      case "keepalive":
      case "unknown":
      case "suggest":
        return;
      case "choke":
        p.peerChoking = true;
        // Without the fast extension a choke drops our requests silently; with it the peer rejects them.
        if (!p.fast) {
          this.picker?.release(p);
          p.inflight.clear();
        }
        return;
      case "unchoke":
        p.peerChoking = false;
        this.fill(p);
        return;
      case "interested":
        p.peerInterested = true;
        // A free upload slot need not wait for the next round.
        if (p.amChoking && [...this.peers.keys()].filter((q) => !q.amChoking).length < UPLOAD_SLOTS) {
          p.amChoking = false;
          p.wire.send({ type: "unchoke" });
        }
        return;
      case "notInterested":
        p.peerInterested = false;
        return;
      case "have":
        this.onHave(p, m.index);
        return;
      case "bitfield":
      case "haveAll":
      case "haveNone":
        this.onBitfield(p, m.type === "bitfield" ? m.bits : m.type === "haveAll");
        return;
      case "request":
        this.onRequest(p, m);
        return;
      case "cancel":
        p.queue = p.queue.filter((r) => !(r.index === m.index && r.begin === m.begin));
        return;
      case "reject":
        if (!p.fast) throw new Error("reject without the fast extension");
        p.inflight.delete(blockKey(m));
        this.picker?.release(p, m);
        if (!p.peerChoking) this.picker?.refuse(p, m.index);
        return;
      case "allowedFast":
        p.allowedFast.add(m.index);
        this.fill(p);
        return;
      case "piece":
        void this.onPiece(p, m.index, m.begin, m.block);
        return;
      case "port":
        if (m.port > 0) this.node.onDhtPort?.({ host: p.wire.remote.host, port: m.port });
        return;
      case "extended":
        this.onExtended(p, m.ext, m.payload);
        return;
      case "hashRequest":
        p.wire.send(serveHashes(this.meta, m));
        return;
      case "hashReject":
        this.layers?.onReject(p, m);
        return;
      case "hashes":
        try {
          const meta = this.layers?.onHashes(p, m);
          if (meta) this.useMetadata(meta);
        } catch (e) {
          this.ban(p, toAmiError(e).message);
        }
        return;
    }
  }

  private onHave(p: Peer, index: number): void {
    if (!this.meta) {
      p.early.haves.push(index);
      return;
    }
    if (index >= this.meta.pieceCount) throw new Error(`have ${index} out of range`);
    p.bits ??= Bits.make(this.meta.pieceCount);
    if (Bits.get(p.bits, index)) return;
    Bits.set(p.bits, index);
    p.haveCount++;
    if (this.picker) this.picker.availability[index] = (this.picker.availability[index] ?? 0) + 1;
    this.updateInterest(p);
  }

  private onBitfield(p: Peer, bits: Buffer | boolean): void {
    if (!this.meta || !this.picker) {
      if (typeof bits === "boolean") p.early.all = bits;
      else p.early.bits = bits;
      return;
    }
    const n = this.meta.pieceCount;
    let b: Buffer;
    if (typeof bits === "boolean") {
      b = Bits.make(n);
      if (bits) for (let i = 0; i < n; i++) Bits.set(b, i);
    } else {
      if (!Bits.valid(bits, n)) throw new Error("bitfield of the wrong size");
      b = bits;
    }
    if (p.bits) this.picker.addBitfield(p.bits, -1);
    p.bits = b;
    p.haveCount = countBits(b);
    this.picker.addBitfield(b, 1);
    this.updateInterest(p);
  }

  private updateInterest(p: Peer): void {
    const s = this.storage;
    if (!s || !p.bits) return;
    let want = false;
    if (!s.complete)
      for (let i = 0; i < s.meta.pieceCount && !want; i++) want = Bits.get(p.bits, i) && !Bits.get(s.have, i);
    if (want !== p.amInterested) {
      p.amInterested = want;
      p.wire.send({ type: want ? "interested" : "notInterested" });
    }
    if (want) this.fill(p);
  }

  private depth(p: Peer): number {
    const byRate = Math.ceil((p.down.perSecond * QUEUE_SECONDS) / MAX_BLOCK);
    return Math.min(p.reqq, Math.max(PIPELINE_MIN, Math.min(PIPELINE, byRate)));
  }

  /** Keep up to depth(p) requests outstanding with a peer that lets us ask. */
  private fill(p: Peer): void {
    if (!this.picker || !this.loaded || !p.bits || !p.amInterested || this.storage?.complete || !this.node.down.ok())
      return;
    const choked = p.peerChoking;
    if (choked && (!p.fast || p.allowedFast.size === 0)) return;
    const room = this.depth(p) - p.inflight.size;
    if (room <= 0) return;
    const elsewhere = (i: number): boolean => {
      for (const q of this.peers.keys())
        if (q !== p && !q.peerChoking && q.bits && Bits.get(q.bits, i) && !q.wire.closed) return true;
      return false;
    };
    for (const r of this.picker.pick(p, p.bits, room, choked ? p.allowedFast : undefined, elsewhere)) {
      p.inflight.set(blockKey(r), r);
      p.wire.send({ type: "request", ...r });
    }
  }

  private async onPiece(p: Peer, index: number, begin: number, block: Buffer): Promise<void> {
    const key = blockKey({ index, begin });
    if (!p.inflight.delete(key) || !this.picker || !this.storage) return;
    p.down.add(block.length);
    this.down.add(block.length);
    this.node.down.spend(block.length);
    // Endgame: whoever else was asked for this block need not send it.
    for (const other of this.picker.askedOf(index, begin)) {
      if (other === p || !other.inflight.delete(key)) continue;
      other.wire.send({ type: "cancel", index, begin, length: block.length });
    }
    const whole = this.picker.received(p, index, begin, block);
    this.fill(p);
    if (!whole) return;
    // The piece stays active (all blocks in, nothing to hand out) until it is on disk, or it would be picked again.
    const ok = await this.storage.write(index, whole.data);
    this.picker.finish(index);
    if (!ok) {
      this.hashFailed(whole.sources, index);
      return;
    }
    for (const q of this.peers.keys()) q.wire.send({ type: "have", index });
    for (const q of this.peers.keys()) if (q.amInterested) this.updateInterest(q);
    if (this.storage.complete) await this.finish();
  }

  /** A piece failed its hash: its sole source is banned; with several, each gets a strike and two strikes ban. */
  private hashFailed(sources: Set<Peer>, index: number): void {
    this.hashFailures++;
    this.node.log.warn(
      `p2p: piece ${index} of ${this.name} failed its hash (from ${[...sources].map((s) => s.label).join(", ")})`,
    );
    for (const s of sources) {
      s.strikes++;
      if (sources.size === 1 || s.strikes >= 2) this.ban(s);
    }
    for (const q of this.peers.keys()) this.fill(q);
  }

  private ban(p: Peer, why = "sent a piece that failed its hash"): void {
    this.node.banned.add(p.id);
    if (p.listen) this.node.banned.add(`${p.listen.host}:${p.listen.port}`);
    this.emit("banned", p.label);
    p.wire.close(`banned: ${why}`);
  }

  private async finish(): Promise<void> {
    if (this.finalizing || !this.storage) return;
    this.finalizing = true;
    try {
      await this.storage.finalize();
      for (const q of this.peers.keys()) {
        if (q.amInterested) q.wire.send({ type: "notInterested" });
        q.amInterested = false;
        q.inflight.clear();
      }
      this.emit("complete");
    } catch (e) {
      this.error = toAmiError(e).message;
      this.emit("failed", e);
    }
  }

  private onRequest(p: Peer, r: { index: number; begin: number; length: number }): void {
    const s = this.storage;
    const allowed = !p.amChoking;
    const valid = s && r.index < s.meta.pieceCount && r.begin + r.length <= requestableSize(s.meta, r.index);
    if (!valid || !allowed || !Bits.get(s.have, r.index)) {
      if (p.fast) p.wire.send({ type: "reject", ...r });
      return;
    }
    if (p.queue.length >= MAX_QUEUED_REQUESTS) throw new Error("request flood");
    p.queue.push(r);
    void this.pump(p);
  }

  /** Serve queued requests while the socket drains and the upload limit allows. */
  private async pump(p: Peer): Promise<void> {
    if (p.pumping || !this.storage) return;
    p.pumping = true;
    try {
      while (p.queue.length && !p.wire.closed && !p.amChoking) {
        if (p.wire.backlog > SERVE_BACKLOG) {
          p.wire.socket.once("drain", () => void this.pump(p));
          return;
        }
        const at = this.nextServe(p);
        if (at < 0) continue;
        const r = p.queue[at] as { index: number; begin: number; length: number };
        if (!this.node.up.take(r.length)) return; // the tick retries
        p.queue.splice(at, 1);
        p.given.add(r.index);
        const piece = await this.storage.read(r.index);
        const data = piece.subarray(r.begin, r.begin + r.length);
        // Past a v2 file's end (libtorrent's pad space, `requestableSize`): zeros.
        const block = data.length < r.length ? Buffer.concat([data, Buffer.alloc(r.length - data.length)]) : data;
        p.wire.send({ type: "piece", index: r.index, begin: r.begin, block });
        p.up.add(block.length);
        this.up.add(block.length);
      }
    } catch (e) {
      this.node.log.warn(`p2p: serving ${this.name}: ${toAmiError(e).message}`);
      p.wire.close("serve error");
    } finally {
      p.pumping = false;
    }
  }

  /**
   * Which of `p`'s queued requests to serve next: FIFO while leeching. A seed serves first the pieces the fewest
   * other peers have (by their HAVEs and bitfields) or were sent by us, so its upload goes to pieces the swarm
   * lacks and the leechers trade the rest; and it refuses (BEP 6 reject) a peer of ours a piece another leecher
   * already holds (not another seed: it would refuse too), SEED_REFUSALS times at most and for SEED_DEFER_MS at
   * most: that peer fetches it there, or asks us again later (picker.ts), and then we serve. -1: the queue
   * changed (requests refused), look again.
   */
  private nextServe(p: Peer): number {
    if (!this.storage?.complete || p.queue.length === 0) return 0;
    const copies = new Map<number, { held: number; sent: number }>();
    let best = 0;
    let bestScore = Number.POSITIVE_INFINITY;
    for (const [j, r] of p.queue.entries()) {
      let c = copies.get(r.index);
      if (c === undefined) {
        c = { held: 0, sent: 0 };
        for (const q of this.peers.keys()) {
          if (q === p || q.wire.closed) continue;
          if (q.bits && Bits.get(q.bits, r.index)) {
            if (q.haveCount < this.storage.meta.pieceCount) c.held++;
          } else if (q.given.has(r.index)) c.sent++;
        }
        copies.set(r.index, c);
      }
      const score = c.held + c.sent;
      if (score < bestScore) {
        best = j;
        bestScore = score;
        if (score === 0) break;
      }
    }
    const index = (p.queue[best] as { index: number }).index;
    if (!p.fast || !p.ours || p.given.has(index) || (copies.get(index)?.held ?? 0) === 0) return best;
    const d = p.deferred.get(index) ?? { at: Date.now(), n: 0 };
    if (d.n >= SEED_REFUSALS || Date.now() - d.at >= SEED_DEFER_MS) return best;
    d.n++;
    p.deferred.set(index, d);
    for (const r of p.queue)
      if (r.index === index) {
        p.wire.send({ type: "reject", ...r });
        p.refusedBytes += r.length;
      }
    p.queue = p.queue.filter((r) => r.index !== index);
    this.refusals++;
    return -1;
  }

  private tick(): void {
    for (const p of this.peers.keys()) {
      if (p.queue.length && !p.pumping) void this.pump(p);
      if (p.inflight.size < this.depth(p) / 2) this.fill(p);
    }
  }

  private rechoke(): void {
    const peers = [...this.peers.keys()];
    const unchoke = this.choker.decide(peers, this.storage?.complete === true);
    for (const p of peers) {
      const want = !unchoke.has(p);
      if (want === p.amChoking) continue;
      p.amChoking = want;
      p.wire.send({ type: want ? "choke" : "unchoke" });
      if (want) {
        if (p.fast) for (const r of p.queue) p.wire.send({ type: "reject", ...r });
        p.queue = [];
      }
    }
  }

  private onExtended(p: Peer, ext: number, payload: Buffer): void {
    if (ext === 0) {
      p.ext = decodeExtHandshake(payload);
      if (p.ext.reqq) p.reqq = Math.max(1, Math.min(p.ext.reqq, 1000));
      if (p.ext.port && p.ext.port > 0 && p.ext.port < 65536)
        p.listen ??= { host: p.wire.remote.host, port: p.ext.port };
      this.metadata?.peerReady(p, (id, pl) => this.sendExt(p, id, pl));
      return;
    }
    if (ext === OUR_EXT.ut_metadata) {
      const info = this.metadata
        ? this.metadata.onMessage(p, payload, (id, pl) => this.sendExt(p, id, pl))
        : MetadataFetch.serve(this.meta, p, payload, (id, pl) => this.sendExt(p, id, pl));
      if (info) this.gotMetadata(info);
      return;
    }
    if (ext === OUR_EXT.ut_pex && !this.isPrivate) {
      for (const a of decodePex(payload).added.slice(0, 50)) this.known.set(`${a.host}:${a.port}`, a);
      this.connectKnown();
    }
  }

  private gotMetadata(meta: Metainfo): void {
    this.metadata = undefined;
    const layers = new LayerFetch(meta);
    if (!layers.done) {
      this.layers = layers;
      for (const p of this.peers.keys()) layers.peerReady(p, (m) => p.wire.send(m));
      return;
    }
    this.useMetadata(meta);
  }

  private useMetadata(meta: Metainfo): void {
    this.layers = undefined;
    this.setMeta(meta);
    this.emit("metadata", meta);
    for (const p of this.peers.keys()) {
      const { all, bits, haves } = p.early;
      if (all !== undefined) this.onBitfield(p, all);
      else if (bits) this.onBitfield(p, bits);
      for (const h of haves) this.onHave(p, h);
      p.early = { haves: [] };
    }
  }

  private sendPex(): void {
    if (this.isPrivate) return;
    const addrs = [...this.peers.keys()].map((p) => p.listen).filter((a): a is PeerAddress => !!a);
    for (const p of this.peers.keys()) {
      const id = p.ext?.m.ut_pex;
      if (!id) continue;
      const others = addrs.filter((a) => a !== p.listen).slice(0, 50);
      if (others.length) this.sendExt(p, id, encodePex(others, []));
    }
  }

  stats() {
    const s = this.storage;
    return {
      infohash: this.hex,
      name: this.name,
      size: this.meta?.totalLength ?? 0,
      pieces: this.meta?.pieceCount ?? 0,
      have: s?.haveCount ?? 0,
      recheckFailed: s?.recheckFailed ?? 0,
      complete: this.complete,
      private: this.isPrivate,
      peers: this.peers.size,
      downloadRate: this.down.perSecond,
      uploadRate: this.up.perSecond,
      downloaded: this.down.total,
      uploaded: this.up.total,
      hashFailures: this.hashFailures,
      refusals: this.refusals,
      error: this.error,
    };
  }

  peerList() {
    return [...this.peers.keys()].map((p) => ({
      address: p.label,
      client: p.ext?.client,
      have: p.bits ? countBits(p.bits) : 0,
      downloaded: p.down.total,
      uploaded: p.up.total,
      amChoking: p.amChoking,
      peerChoking: p.peerChoking,
    }));
  }
}

function countBits(b: Buffer): number {
  let n = 0;
  for (const x of b) for (let v = x; v; v &= v - 1) n++;
  return n;
}
