/**
 * The federation service of one homeserver (hs.federation): who we talk to (access.ts), where they are
 * (discovery.ts), the one client for calls to them (client.ts), their keys (key-fetcher.ts), and the X-Matrix
 * check of incoming requests. Built even in isolated mode, where the client refuses and no route is served.
 */
import { AmiError } from "../../core/errors.ts";
import type { Logger } from "../../core/logger.ts";
import type { MatrixConfig } from "../config.ts";
import type { SigningKey } from "../events/signing.ts";
import type { MatrixRequest } from "../http/types.ts";
import type { DestinationStore } from "../store/destinations-types.ts";
import type { ServerKeyStore } from "../store/server-keys-types.ts";
import { ServerAccess } from "./access.ts";
import { FederationClient } from "./client.ts";
import { Discovery, type DiscoveryDeps } from "./discovery.ts";
import { KeyFetcher } from "./key-fetcher.ts";
import { FederationSender } from "./sender.ts";
import { InboundTransactions, type OnPdus, pdusNotSupported } from "./transactions.ts";
import { parseXMatrix, verifyRequestSignature } from "./x-matrix.ts";

export interface FederationDeps {
  serverName: string;
  signingKey: SigningKey;
  config: MatrixConfig;
  store: { serverKeys: ServerKeyStore; destinations: DestinationStore };
  log: Logger;
  /** DNS and well-known lookups (tests give their own; default node:dns and fetch). */
  discovery?: DiscoveryDeps;
}

export class Federation {
  readonly serverName: string;
  readonly access: ServerAccess;
  readonly discovery: Discovery;
  readonly client: FederationClient;
  readonly keys: KeyFetcher;
  /** Outgoing transactions: per-destination queues, backoff (sender.ts). */
  readonly sender: FederationSender;
  /** Incoming transactions already answered (replays get the same answer; transactions.ts). */
  readonly inbound = new InboundTransactions();
  /**
   * Where the PDUs of an incoming transaction go: the room DAG replaces this seam; until then each PDU is answered
   * with an error and nothing is applied.
   */
  onPdus: OnPdus = pdusNotSupported;
  /** Points where tests may hold a federation flow: a join between its send_join answer and its store. */
  readonly hooks: { sendJoinAnswered?: (roomId: string) => Promise<void> } = {};

  constructor(d: FederationDeps) {
    const cfg = d.config.federation;
    this.serverName = d.serverName;
    this.access = new ServerAccess(cfg);
    this.discovery = new Discovery(cfg, d.discovery);
    this.client = new FederationClient(d.serverName, d.signingKey, cfg, this.discovery, this.access);
    this.keys = new KeyFetcher({
      serverName: d.serverName,
      signingKey: d.signingKey,
      cfg,
      store: d.store.serverKeys,
      client: this.client,
      log: d.log,
    });
    this.sender = new FederationSender({
      serverName: d.serverName,
      cfg,
      client: this.client,
      store: d.store.destinations,
      log: d.log,
    });
  }

  /**
   * The origin server of an X-Matrix signed request (spec "Request Authentication"), or a throw: 401
   * M_UNAUTHORIZED for a missing or malformed header, another destination, an unknown key or a bad signature;
   * 403 M_FORBIDDEN for a server the allow/deny lists exclude (checked before any key is fetched for it).
   */
  async authenticate(req: MatrixRequest): Promise<string> {
    const auth = parseXMatrix(req.headers.authorization);
    if (auth.destination !== undefined && auth.destination !== this.serverName)
      throw new AmiError("M_UNAUTHORIZED", `This request is for ${auth.destination}, not this server`);
    if (!this.access.allowed(auth.origin))
      throw new AmiError("M_FORBIDDEN", `Federation with ${auth.origin} is not allowed by this server`);
    if (auth.origin === this.serverName) throw new AmiError("M_UNAUTHORIZED", "A request cannot come from this server");
    const key = await this.keys.verifyKey(auth.origin, auth.key);
    if (!key) throw new AmiError("M_UNAUTHORIZED", `Unknown or expired key ${auth.key} of ${auth.origin}`);
    const base = { method: req.method, uri: req.uri, origin: auth.origin, destination: this.serverName };
    const hasBody = req.body !== undefined;
    const ok =
      verifyRequestSignature({ ...base, content: hasBody ? req.body : undefined }, auth, key.publicKey) ||
      // A POST/PUT with no body at all signs no content; the edge hands such a handler `{}`.
      (hasBody && Object.keys(req.body).length === 0 && verifyRequestSignature(base, auth, key.publicKey));
    if (!ok) throw new AmiError("M_UNAUTHORIZED", `Signature of ${auth.origin} does not verify`);
    return auth.origin;
  }
}
