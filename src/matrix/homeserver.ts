/** Composition root of the homeserver: opens the store, loads keys, wires services and routes. */

import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import type { Server } from "node:http";
import { join } from "node:path";
import { openStoreAt } from "../cas/open.ts";
import type { CasStore } from "../cas/types.ts";
import type { MatrixConfig } from "../config.ts";
import { AmiError } from "../core/errors.ts";
import { baseUrl } from "../core/http/address.ts";
import { createHttpListener, DEFAULT_LIMITS, type ListenerLimits } from "../core/http/server.ts";
import type { Logger } from "../core/logger.ts";
import { loadOrCreateSecret } from "../core/secret.ts";
import { allRoutes } from "./client/index.ts";
import { type Cluster, joinCluster } from "./cluster/index.ts";
import { formatSigningKeyFile, generateSigningKey, parseSigningKeyFile, type SigningKey } from "./events/signing.ts";
import type { ClientEvent } from "./events/types.ts";
import { watchRoomHosts } from "./federation/edus-out.ts";
import { federationRoutes } from "./federation/index.ts";
import { PartialStateResync } from "./federation/partial-state.ts";
import { dagStateResolver, GraphCache, PduIn } from "./federation/pdu-in.ts";
import { owedPdusFor } from "./federation/room-reads.ts";
import { Federation } from "./federation/service.ts";
import { formatClientEvents } from "./format.ts";
import type { AuthService, Homeserver, Notifier, PushService, RoomService, TypingService } from "./hs.ts";
import { createHandler } from "./http/server.ts";
import type { Route } from "./http/types.ts";
import { Metrics } from "./metrics.ts";
import { Auth } from "./service/auth.ts";
import { MediaService } from "./service/media.ts";
import { SyncNotifier } from "./service/notifier.ts";
import { Push } from "./service/push.ts";
import type { Requester } from "./service/requester.ts";
import { Rooms } from "./service/rooms.ts";
import { Typing } from "./service/typing.ts";
import { openStore } from "./store/open.ts";
import type { Store, StoredEvent } from "./store/types.ts";
import { StreamWriter } from "./stream.ts";
import { WsHub } from "./websocket/hub.ts";

class HomeserverImpl implements Homeserver {
  readonly metrics = new Metrics();
  readonly serverName: string;
  /** From config, else http://<host>:<bound port> (set once listening, so `port: 0` gives the real port). */
  publicBaseUrl: string;
  readonly mediaDir: string;
  readonly cas: CasStore;
  readonly media: MediaService;
  readonly registrationSharedSecret: string;
  readonly notifier: Notifier;
  readonly stream: StreamWriter;
  readonly rooms: RoomService;
  readonly auth: AuthService;
  readonly typing: TypingService;
  readonly push: PushService;
  readonly federation: Federation;
  /** Incoming PDUs (federation/pdu-in.ts; counters for tests and the monitor). */
  readonly pduIn: PduIn;
  readonly partialState: PartialStateResync;
  readonly config: MatrixConfig;
  readonly store: Store;
  readonly log: Logger;
  readonly signingKey: SigningKey;
  readonly dataDir: string;
  readonly cluster: Cluster;
  readonly #versions = new Map<string, string>();

  constructor(
    config: MatrixConfig,
    store: Store,
    log: Logger,
    signingKey: SigningKey,
    dataDir: string,
    maxStream: number,
    cas: CasStore,
    cluster: Cluster,
  ) {
    this.config = config;
    this.cluster = cluster;
    this.cas = cas;
    this.store = store;
    this.log = log;
    this.signingKey = signingKey;
    this.dataDir = dataDir;
    this.serverName = config.serverName;
    this.publicBaseUrl = baseUrlFor(config, config.port);
    this.mediaDir = config.media.storePath ?? join(dataDir, "media");
    mkdirSync(this.mediaDir, { recursive: true });
    this.media = new MediaService(config.media, dataDir, cluster, store.media);
    this.registrationSharedSecret =
      config.registration.sharedSecret ?? loadOrCreateSecret(join(dataDir, "registration_shared_secret"));
    this.notifier = new SyncNotifier(this);
    this.stream = new StreamWriter(
      maxStream,
      () => this.notifier.notify(),
      (evs) => store.events.persistEvents(evs),
      cluster.sequencer,
      store.events.persistInTurn ? (evs, turn) => store.events.persistInTurn!(evs, turn) : null,
    );
    cluster.attach(this.stream);
    this.typing = new Typing(this);
    this.auth = new Auth(this);
    this.rooms = new Rooms(this);
    this.push = new Push(this);
    this.federation = new Federation({ serverName: this.serverName, signingKey, config, store, log });
    this.metrics.rateLimitFallbacks = () => cluster.rateLimitFallbacks;
    if (config.federation.enabled) {
      this.metrics.federation = () => this.federation.sender.snapshot();
      this.metrics.federationSender = () => this.federation.sender.leading;
    }
    // The room DAG's federation side: state resolution v2 for forked rooms, incoming PDUs (federation/pdu-in.ts).
    const graphs = new GraphCache(store);
    this.rooms.stateResolver = dagStateResolver(graphs);
    this.pduIn = new PduIn(this, graphs);
    this.federation.onPdus = this.pduIn.onPdus;
    // The catch-up resends owed events as backfill would: what the destination's users may not see, redacted.
    this.federation.sender.prepareOwed = (destination, owed) => owedPdusFor(this, destination, owed);
    this.partialState = new PartialStateResync(this);
  }

  clientEvents(evs: StoredEvent[], forUser: Requester | null): Promise<ClientEvent[]> {
    return formatClientEvents(this.store, (id) => this.#roomVersion(id), evs, forUser);
  }

  async #roomVersion(roomId: string): Promise<string> {
    let v = this.#versions.get(roomId);
    if (!v) {
      const room = await this.store.rooms.getRoom(roomId);
      if (!room) throw new AmiError("M_NOT_FOUND", "Unknown room");
      v = room.version;
      // A room's version never changes; the cap only bounds memory (a full reset costs one read per room).
      if (this.#versions.size >= MAX_CACHED_VERSIONS) this.#versions.clear();
      this.#versions.set(roomId, v);
    }
    return v;
  }
}

const MAX_CACHED_VERSIONS = 20_000;

/**
 * POST /_ami/debug/gc (server admins only): run a full garbage collection and answer the V8 heap figures before
 * and after, so a test can compare retained memory between load rounds. Only when Node runs with --expose-gc.
 */
const gcRoute: Route = {
  method: "POST",
  paths: ["/_ami/debug/gc"],
  auth: "required",
  async handler(req) {
    if (!req.requester?.isAdmin) throw new AmiError("M_FORBIDDEN", "You are not a server admin");
    const gc = (globalThis as { gc?: () => void }).gc;
    if (typeof gc !== "function")
      throw new AmiError("M_UNRECOGNIZED", "Start the homeserver with --expose-gc", {}, 404);
    const before = process.memoryUsage();
    gc();
    const after = process.memoryUsage();
    return {
      json: {
        heap_used_before_bytes: before.heapUsed,
        heap_used_bytes: after.heapUsed,
        external_bytes: after.external,
        rss_bytes: after.rss,
      },
    };
  },
};

/** config.publicBaseUrl, else http://<host>:<port> (a wildcard bind address is shown as loopback). */
function baseUrlFor(config: MatrixConfig, port: number): string {
  if (config.publicBaseUrl) return config.publicBaseUrl.replace(/\/$/, "");
  return baseUrl("http", config.host, port);
}

function loadOrCreateSigningKey(path: string): SigningKey {
  if (existsSync(path)) return parseSigningKeyFile(readFileSync(path, "utf8"));
  const k = generateSigningKey();
  writeFileSync(path, formatSigningKeyFile(k), { mode: 0o600 });
  return k;
}

export interface RunningHomeserver {
  hs: Homeserver;
  server: Server;
  url: string;
  close(): Promise<void>;
}

/**
 * Open the store and start listening. `port: 0` picks a free port (tests). `cas` is the runtime home's
 * content-addressed store (the service passes it); without one, a store under dataDir/cas (tests, embedded use).
 */
export async function startHomeserver(
  config: MatrixConfig,
  dataDir: string,
  log: Logger,
  cas?: CasStore,
): Promise<RunningHomeserver> {
  mkdirSync(dataDir, { recursive: true });
  const store = await openStore(config.database, dataDir);
  const signingKey = loadOrCreateSigningKey(join(dataDir, "signing.key"));
  const blobs = cas ?? openStoreAt(join(dataDir, "cas"));
  const maxStream = await store.getMaxStream();
  let cluster: Cluster;
  try {
    cluster = await joinCluster(config, log, maxStream);
  } catch (e) {
    await store.close();
    throw e;
  }
  // With workers, positions come from the cluster's sequence, which may be past what this process stored.
  const hs = new HomeserverImpl(config, store, log, signingKey, dataDir, maxStream, blobs, cluster);
  if (cluster.sequencer) hs.stream.observe(await cluster.sequencer.head());
  if (config.federation.enabled) watchRoomHosts(hs);
  // Every destination's retry state, so the monitor shows them and a dead one stays backed off after a restart.
  // With workers, one of them sends (the lease holder) and the others hand their work to it.
  if (config.federation.enabled) await cluster.startFederationSender(hs.federation.sender);
  // The per-user to-device count is the cluster's, not each worker's.
  const { windows } = cluster;
  if (windows) hs.federation.sender.sharedCount = (key, n, limit, ms) => windows.count(key, n, limit, ms);
  // Rooms joined with members omitted whose resync had not finished: resumed in the background.
  if (config.federation.enabled) await hs.partialState.load();
  const limits: ListenerLimits = {
    ...DEFAULT_LIMITS,
    maxConnections: config.limits.maxConnections,
    maxConnectionsPerAddress: config.limits.maxConnectionsPerAddress,
    requestTimeoutMs: config.limits.requestTimeoutMs,
  };
  // WebSocket event streaming (docs/matrix-websocket.md) rides the same port through the upgrade handler.
  const wsHub = new WsHub(hs);
  const listener = createHttpListener({
    name: "homeserver",
    log,
    // Isolated mode (federation.enabled false) serves no server-server route at all.
    handler: createHandler(hs, [...allRoutes, gcRoute, ...(config.federation.enabled ? federationRoutes : [])], limits),
    upgrade: (req, socket, head, target) => wsHub.upgrade(req, socket, head, target),
    limits,
    // Workers share the port: the kernel spreads connections over them (docs/ARCHITECTURE.md "Homeserver scale-out").
    reusePort: config.workers > 1,
  });
  let port: number;
  try {
    port = await listener.listen(config.port, config.host);
  } catch (e) {
    wsHub.close();
    hs.push.close();
    hs.federation.sender.close();
    await cluster.close();
    await store.close();
    throw e;
  }
  const server = listener.server;
  const url = baseUrl("http", config.host, port);
  if (!config.publicBaseUrl) hs.publicBaseUrl = baseUrlFor(config, port);
  log.info("homeserver listening", { url, serverName: config.serverName, store: store.backend });
  return {
    hs,
    server,
    url,
    async close() {
      wsHub.close();
      hs.push.close();
      hs.federation.sender.close();
      await listener.close();
      await hs.partialState.close();
      // The queues' owed and delivered positions still being written (federation/sender.ts).
      await hs.federation.sender.drained();
      await cluster.close();
      await store.close();
    },
  };
}
