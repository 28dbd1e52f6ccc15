/**
 * A mainline-DHT node (BEP 5) that the swarm uses as a PeerDiscovery: `lookup(infohash)` yields peers as the
 * iterative get_peers walk finds them, `announce(infohash, port)` walks to the K closest nodes and announces to
 * each with the token it handed out. Answers ping / find_node / get_peers / announce_peer from others (see
 * server.ts), keeps its routing table fresh (bucket refresh, pinging stale nodes before evicting them) and saves
 * it under `stateDir` across restarts. Bootstrap nodes are whatever the caller configures: none by default.
 */
import { lookup as dnsLookup } from "node:dns/promises";
import { isIPv4 } from "node:net";
import { AmiError } from "../../core/errors.ts";
import { type Logger, silentLogger } from "../../core/logger.ts";
import type { PeerAddress, PeerDiscovery } from "../discovery.ts";
import { decodeNodes, decodePeer, isId, type NodeAddr, type NodeInfo, randomId } from "./id.ts";
import { decodeMessage, encodeError, KrpcError } from "./krpc.ts";
import { isLocalHost, isLoopback } from "./local.ts";
import { type Answer, iterativeLookup, type LookupResult } from "./lookup.ts";
import { PeerStore } from "./peers.ts";
import { loadState, saveState } from "./persist.ts";
import { IpRateLimit, type RateLimitOptions } from "./ratelimit.ts";
import { K, QUESTIONABLE_MS, RoutingTable } from "./routing.ts";
import { Rpc } from "./rpc.ts";
import { handleQuery } from "./server.ts";
import { peerStream } from "./stream.ts";
import { TokenSecrets } from "./tokens.ts";
import { type DhtTransport, type MemoryNetwork, udpTransport } from "./transport.ts";

/** No answer is more than this many times the datagram that asked for it (a find_node answer is ≈3×). */
const MAX_REPLY_FACTOR = 4;

export interface DhtOptions {
  /** UDP port (0 = any free one). */
  port?: number;
  host?: string;
  /** "host:port" entry points; none by default (nothing public is contacted unless configured). */
  bootstrap?: string[];
  /** Where dht.json (node id + routing table) is kept; no persistence without it. */
  stateDir?: string;
  logger?: Logger;
  /** Our node id (default: the saved one, else random). */
  id?: Buffer;
  /** BEP 43: query others but never answer, and ask them not to add us to their tables. */
  readOnly?: boolean;
  /** Per-IP limit on incoming queries; false turns it off (simulations where thousands of nodes share one IP). */
  rateLimit?: RateLimitOptions | false;
  queryTimeoutMs?: number;
  /** Routing-table slots one (non-loopback) IP may hold; default 2. */
  nodesPerIp?: number;
  /** Run over this in-memory network instead of UDP (the simulation). */
  network?: MemoryNetwork;
  /** How often buckets are checked for a refresh; untouched buckets are refreshed after QUESTIONABLE_MS. */
  refreshCheckMs?: number;
  /** start() joins the network in the background (default); false leaves it to an explicit bootstrap(). */
  autoBootstrap?: boolean;
}

export interface DhtStats {
  id: string;
  address: NodeAddr | null;
  tableSize: number;
  buckets: number;
  goodNodes: number;
  infohashes: number;
  storedPeers: number;
  lookups: number;
  lookupsActive: number;
  announces: number;
  rx: number;
  tx: number;
  rxBytes: number;
  txBytes: number;
  queriesIn: Record<string, number>;
  malformed: number;
  rateLimited: number;
  badTokens: number;
  timeouts: number;
  unmatched: number;
  overCap: number;
  inflight: number;
}

export class Dht implements PeerDiscovery {
  readonly name = "dht";
  id: Buffer;
  readonly o: DhtOptions;
  readonly log: Logger;
  table: RoutingTable;
  readonly peers = new PeerStore();
  readonly tokens = new TokenSecrets();
  readonly limit: IpRateLimit | null;
  private transport: DhtTransport | null = null;
  private rpcImpl: Rpc | null = null;
  private timers: NodeJS.Timeout[] = [];
  private readonly pinging = new Set<string>();
  private stopping = new AbortController();
  private readonly counters = {
    lookups: 0,
    lookupsActive: 0,
    announces: 0,
    rx: 0,
    tx: 0,
    rxBytes: 0,
    txBytes: 0,
    malformed: 0,
    rateLimited: 0,
    badTokens: 0,
  };
  readonly queriesIn: Record<string, number> = { ping: 0, find_node: 0, get_peers: 0, announce_peer: 0 };

  constructor(o: DhtOptions = {}) {
    this.o = o;
    this.log = (o.logger ?? silentLogger).child({ component: "dht" });
    this.id = o.id ?? randomId();
    this.table = this.newTable();
    this.limit = o.rateLimit === false ? null : new IpRateLimit(o.rateLimit ?? { perSecond: 20, burst: 100 });
  }

  private newTable(): RoutingTable {
    return new RoutingTable(this.id, Date.now, { perIp: this.o.nodesPerIp ?? 2, exempt: this.exempt });
  }

  /** Hosts exempt from the per-IP limits: loopback, and on UDP this machine's own addresses (local.ts). */
  private readonly exempt = (host: string): boolean => (this.o.network ? isLoopback(host) : isLocalHost(host));

  get address(): NodeAddr | null {
    return this.transport?.address ?? null;
  }

  get running(): boolean {
    return this.transport !== null;
  }

  async start(): Promise<void> {
    if (this.transport) return;
    const saved = this.o.stateDir ? await loadState(this.o.stateDir) : undefined;
    if (saved && !this.o.id) {
      this.id = saved.id;
      this.table = this.newTable();
    }
    this.stopping = new AbortController(); // a stopped node may be started again
    const receive = (msg: Buffer, from: NodeAddr) => this.receive(msg, from);
    this.transport = this.o.network
      ? this.o.network.attach(receive)
      : await udpTransport(this.o.host ?? "0.0.0.0", this.o.port ?? 0, receive, (err) =>
          this.log.debug("udp error", { err: err.message }),
        );
    this.rpcImpl = new Rpc({
      send: (m, to) => this.send(m, to),
      timeoutMs: this.o.queryTimeoutMs ?? 2000,
      maxInflight: 2048,
      readOnly: this.o.readOnly ?? false,
    });
    // Saved nodes come back questionable: they answered once, long ago.
    for (const n of saved?.nodes ?? []) this.table.add(n, false);
    const every = (ms: number, f: () => void) => {
      const t = setInterval(f, ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.o.refreshCheckMs ?? 60_000, () => void this.refresh());
    every(5 * 60_000, () => {
      this.peers.sweep();
      void this.save();
    });
    this.log.info("dht listening", { address: this.transport.address, id: this.id.toString("hex") });
    if (this.o.autoBootstrap !== false && (saved?.nodes.length || this.o.bootstrap?.length))
      void this.bootstrap().catch(() => {});
  }

  async stop(): Promise<void> {
    if (!this.transport) return;
    this.stopping.abort();
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.rpcImpl?.close();
    await this.save();
    await this.transport.close();
    this.transport = null;
  }

  private async save(): Promise<void> {
    if (!this.o.stateDir) return;
    try {
      await saveState(this.o.stateDir, { id: this.id, nodes: this.table.all() });
    } catch (err) {
      this.log.warn("dht: cannot save the routing table", { err: (err as Error).message });
    }
  }

  private get rpc(): Rpc {
    if (!this.rpcImpl || !this.transport) throw new AmiError("AMI_NOT_RUNNING", "dht: not started");
    return this.rpcImpl;
  }

  send(msg: Buffer, to: NodeAddr): void {
    if (!this.transport) return;
    this.counters.tx++;
    this.counters.txBytes += msg.length;
    this.transport.send(msg, to);
  }

  private receive(buf: Buffer, from: NodeAddr): void {
    this.counters.rx++;
    this.counters.rxBytes += buf.length;
    try {
      const m = decodeMessage(buf);
      if (m.y === "r" || m.y === "e") {
        this.rpcImpl?.reply(m, from);
        return;
      }
      if (this.o.readOnly) return; // BEP 43: read-only nodes do not answer
      if (this.limit && !this.limit.allow(from.host)) {
        this.counters.rateLimited++;
        return;
      }
      if (m.y === "bad") {
        this.counters.malformed++;
        // The source may be spoofed: an error bigger than MAX_REPLY_FACTOR× its datagram ("d1:t1:ae", 8 bytes,
        // bought ~40) would make us an amplifier. Silence is a valid KRPC answer to junk.
        const e = m.t ? encodeError(m.t, m.code, m.code === 204 ? "Method Unknown" : "Protocol Error") : undefined;
        if (e && e.length <= MAX_REPLY_FACTOR * buf.length) this.send(e, from);
        return;
      }
      this.queriesIn[m.q]++;
      if (!m.ro) this.heard({ id: m.id, host: from.host, port: from.port }, false);
      let out: ReturnType<typeof handleQuery>;
      try {
        out = handleQuery(this, m, from);
      } catch (err) {
        // Our bug, not the querier's: 202, and the node stays up.
        this.log.warn("dht: query handling failed", { q: m.q, err: (err as Error).message });
        out = { kind: "error", msg: encodeError(m.t, KrpcError.server, "Server Error") };
      }
      if (m.q === "announce_peer" && out.kind === "error") this.counters.badTokens++;
      if (out.msg.length <= MAX_REPLY_FACTOR * buf.length) this.send(out.msg, from);
    } catch (err) {
      // A bug must not let one datagram take the node down.
      this.counters.malformed++;
      this.log.warn("dht: datagram handling failed", { err: (err as Error).message });
    }
  }

  /** A node talked to us: put it in the table; a full bucket pings its stalest node before replacing it. */
  private heard(n: NodeInfo, replied: boolean): void {
    const r = this.table.add(n, replied);
    if (r.kind !== "full" || this.pinging.size >= 16) return;
    const key = r.ping.id.toString("hex");
    if (this.pinging.has(key)) return;
    this.pinging.add(key);
    const victim = r.ping;
    void this.query(victim, "ping", {}).then((a) => {
      this.pinging.delete(key);
      if (!a) {
        this.table.failed(victim.id, true);
        this.table.add(n, replied);
      }
    });
  }

  /** One query; the answer is parsed, and the table learns whether the node answered. */
  async query(
    to: NodeAddr & { id?: Buffer },
    q: "ping" | "find_node" | "get_peers",
    args: { target?: Buffer; info_hash?: Buffer },
    signal?: AbortSignal,
  ): Promise<Answer | null> {
    const r = await this.rpc.query(to, q, { id: this.id, ...args }, signal);
    if (!r || r.y === "e") {
      if (!r && to.id) this.table.failed(to.id);
      return null;
    }
    this.heard({ id: r.id, host: to.host, port: to.port }, true);
    const nodes = Buffer.isBuffer(r.r.nodes) ? decodeNodes(r.r.nodes).slice(0, 3 * K) : [];
    const values: NodeAddr[] = [];
    if (Array.isArray(r.r.values))
      for (const v of r.r.values.slice(0, 200)) {
        const p = decodePeer(v);
        if (p) values.push(p);
      }
    const token = Buffer.isBuffer(r.r.token) && r.r.token.length <= 64 ? r.r.token : undefined;
    return { id: r.id, nodes: nodes.filter((x) => isId(x.id)), values, token };
  }

  private async seeds(): Promise<Array<NodeInfo | NodeAddr>> {
    const out: Array<NodeInfo | NodeAddr> = [];
    for (const b of this.o.bootstrap ?? []) {
      const i = b.lastIndexOf(":");
      const host = b.slice(0, i);
      const port = Number(b.slice(i + 1));
      if (i < 0 || !Number.isInteger(port) || port < 1 || port > 65535) {
        this.log.warn("dht: bad bootstrap entry (want host:port)", { entry: b });
        continue;
      }
      try {
        out.push({ host: isIPv4(host) ? host : (await dnsLookup(host, { family: 4 })).address, port });
      } catch (err) {
        this.log.warn("dht: cannot resolve bootstrap node", { entry: b, err: (err as Error).message });
      }
    }
    return out;
  }

  /** Walk toward `target`: find_node, or get_peers when `peersOf` is set (then `onPeer` gets each peer once). */
  async walk(
    target: Buffer,
    opts: { getPeers?: boolean; onPeer?: (p: NodeAddr) => void; signal?: AbortSignal } = {},
  ): Promise<LookupResult> {
    if (!this.running) throw new AmiError("AMI_NOT_RUNNING", "dht: not started");
    const signal = opts.signal ? AbortSignal.any([opts.signal, this.stopping.signal]) : this.stopping.signal;
    const known = this.table.closest(target, K);
    const seeds = known.length >= K ? known : [...known, ...(await this.seeds())];
    this.counters.lookups++;
    this.counters.lookupsActive++;
    try {
      return await iterativeLookup({
        target,
        seeds,
        selfId: this.id,
        k: K,
        signal,
        onPeer: opts.onPeer,
        slowMs: (this.o.queryTimeoutMs ?? 2000) / 4,
        exempt: this.exempt,
        ask: (to) =>
          this.query(
            to,
            opts.getPeers ? "get_peers" : "find_node",
            opts.getPeers ? { info_hash: target } : { target },
            signal,
          ),
      });
    } finally {
      this.counters.lookupsActive--;
    }
  }

  /** Join the network: look ourselves up, which fills the buckets near us (BEP 5's bootstrap). */
  async bootstrap(): Promise<number> {
    await this.walk(this.id);
    return this.table.size;
  }

  /** Refresh buckets nobody touched for 15 minutes with a lookup of a random id inside them. */
  async refresh(maxAgeMs = QUESTIONABLE_MS, onlyNotFull = false): Promise<void> {
    if (!this.running) return;
    await Promise.all(
      this.table.staleBuckets(maxAgeMs, onlyNotFull).map((target) => this.walk(target).catch(() => {})),
    );
  }

  /** PeerDiscovery: peers for `infohash`, ours first, then as the get_peers walk finds them. */
  async *lookup(infohash: Buffer, signal?: AbortSignal): AsyncIterable<PeerAddress> {
    if (!isId(infohash)) throw new AmiError("AMI_INVALID_INPUT", "dht: an infohash is 20 bytes");
    yield* peerStream(
      this.peers.get(infohash),
      (push, sig) => this.walk(infohash, { getPeers: true, onPeer: push, signal: sig }),
      signal,
    );
  }

  /**
   * PeerDiscovery: announce that we serve `infohash` on TCP `port` to the K closest nodes (port 0 = BEP 5's
   * implied_port: "use the port my datagrams come from").
   */
  async announce(infohash: Buffer, port: number, signal?: AbortSignal): Promise<void> {
    await this.announceCount(infohash, port, signal);
  }

  /** announce(), resolving with how many of the closest nodes accepted it. */
  async announceCount(infohash: Buffer, port: number, signal?: AbortSignal): Promise<number> {
    if (!isId(infohash)) throw new AmiError("AMI_INVALID_INPUT", "dht: an infohash is 20 bytes");
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new AmiError("AMI_INVALID_INPUT", `dht: bad announce port ${port}`);
    const res = await this.walk(infohash, { getPeers: true, signal });
    this.counters.announces++;
    const acks = await Promise.all(
      res.closest
        .filter((n) => n.token)
        .map(async (n) => {
          const r = await this.rpc.query(
            n,
            "announce_peer",
            { id: this.id, info_hash: infohash, port: port || 1, implied_port: port === 0 ? 1 : 0, token: n.token },
            signal,
          );
          return r?.y === "r" ? 1 : 0;
        }),
    );
    return acks.reduce<number>((a, b) => a + b, 0);
  }

  /** The routing table's nodes (for the monitor and `p2p peers`). */
  nodes(): Array<{ id: string; host: string; port: number; state: string }> {
    return this.table
      .all()
      .map((n) => ({ id: n.id.toString("hex"), host: n.host, port: n.port, state: this.table.state(n) }));
  }

  stats(): DhtStats {
    const all = this.table.all();
    const ps = this.peers.stats;
    return {
      id: this.id.toString("hex"),
      address: this.address,
      tableSize: all.length,
      buckets: this.table.bucketCount,
      goodNodes: all.filter((n) => this.table.state(n) === "good").length,
      infohashes: ps.infohashes,
      storedPeers: ps.peers,
      ...this.counters,
      queriesIn: { ...this.queriesIn },
      timeouts: this.rpcImpl?.timeouts ?? 0,
      unmatched: this.rpcImpl?.unmatched ?? 0,
      overCap: this.rpcImpl?.overCap ?? 0,
      inflight: this.rpcImpl?.inflight ?? 0,
    };
  }
}
