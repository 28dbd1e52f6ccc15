/**
 * Other servers' signing keys (spec server-server "Retrieving server keys"): asked of the server itself
 * (`GET /_matrix/key/v2/server`), else of the configured notaries (`POST /_matrix/key/v2/query`), checked
 * (self-signed by the keys it lists; a notary's answer also signed by the notary) and cached in the store
 * (ServerKeyStore) with their validity. A key id we do not hold, or one held past its validity, is fetched again,
 * but at most once per server at a time, at most `maxConcurrentKeyFetches` servers at once, and a server whose
 * fetch failed is left alone for `keyFetchBackoffMs` (doubling, up to an hour): no retry storms against dead
 * servers, and a forger's random key ids cannot make us refetch on every request.
 */
import { AmiError } from "../../core/errors.ts";
import type { Logger } from "../../core/logger.ts";
import type { MatrixConfig } from "../config.ts";
import { canonicalJson } from "../events/canonical-json.ts";
import { type SigningKey, signatureKeyIds, signJson, verifyJsonSignature } from "../events/signing.ts";
import { isJsonObject } from "../events/types.ts";
import type { ServerKeyRow, ServerKeyStore } from "../store/server-keys-types.ts";
import type { FederationClient } from "./client.ts";
import { ourKeysResponse, type ServerKeysResponse } from "./server-keys.ts";

export interface VerifyKey {
  keyId: string;
  publicKey: string;
  /** Usable for signatures made before this (capped at fetch time + 7 days, as the spec asks). */
  validUntilTs: number;
  /** An old key: signatures made at or after this are not accepted. */
  expiredTs: number | null;
}

const SEVEN_DAYS_MS = 7 * 86_400_000;
/** After a successful fetch, a key id it lacked is asked for again only after this. */
const MIN_REFETCH_MS = 10_000;
const MAX_BACKOFF_MS = 3600_000;
const MAX_CACHED_SERVERS = 10_000;

/** True when a signature made at `ts` by this key is acceptable. */
export function keyValidAt(k: Pick<VerifyKey, "validUntilTs" | "expiredTs">, ts: number): boolean {
  return k.expiredTs !== null ? ts < k.expiredTs : ts <= k.validUntilTs;
}

/**
 * Checks a server's key response: the right server name, well-formed keys, a valid_until_ts, and signed by at
 * least one key of its verify_keys with every signature by a listed key correct. Returns the rows to store.
 */
export function checkKeyResponse(body: unknown, serverName: string, now: number): ServerKeyRow[] {
  const bad = (why: string) => new AmiError("M_UNAUTHORIZED", `Key response of ${serverName}: ${why}`, {}, 502);
  if (!isJsonObject(body)) throw bad("not a JSON object");
  const r = body as Partial<ServerKeysResponse>;
  if (r.server_name !== serverName) throw bad(`server_name is '${String(r.server_name)}'`);
  if (!Number.isSafeInteger(r.valid_until_ts)) throw bad("no valid_until_ts");
  if (!isJsonObject(r.verify_keys)) throw bad("no verify_keys");
  const keys = new Map<string, string>();
  for (const [id, v] of Object.entries(r.verify_keys)) {
    const key = (v as { key?: unknown })?.key;
    if (!/^ed25519:[A-Za-z0-9_]+$/.test(id) || typeof key !== "string") continue;
    keys.set(id, key);
  }
  let verified = 0;
  for (const id of signatureKeyIds(r, serverName)) {
    const pub = keys.get(id);
    if (pub === undefined) continue;
    if (!verifyJsonSignature(r, serverName, id, pub)) throw bad(`signature by ${id} does not verify`);
    verified++;
  }
  if (verified === 0) throw bad("not signed by any of its verify_keys");
  const validUntilTs = Math.min(r.valid_until_ts as number, now + SEVEN_DAYS_MS);
  const responseJson = canonicalJson(r);
  const rows: ServerKeyRow[] = [...keys].map(([keyId, publicKey]) => ({
    serverName,
    keyId,
    publicKey,
    validUntilTs,
    expiredTs: null,
    fetchedTs: now,
    responseJson,
  }));
  if (isJsonObject(r.old_verify_keys))
    for (const [keyId, v] of Object.entries(r.old_verify_keys)) {
      const o = v as { key?: unknown; expired_ts?: unknown };
      if (keys.has(keyId) || !/^ed25519:[A-Za-z0-9_]+$/.test(keyId)) continue;
      if (typeof o?.key !== "string" || !Number.isSafeInteger(o.expired_ts)) continue;
      rows.push({
        serverName,
        keyId,
        publicKey: o.key,
        validUntilTs: o.expired_ts as number,
        expiredTs: o.expired_ts as number,
        fetchedTs: now,
        responseJson,
      });
    }
  return rows;
}

export interface KeyFetcherDeps {
  serverName: string;
  signingKey: SigningKey;
  cfg: MatrixConfig["federation"];
  store: ServerKeyStore;
  client: FederationClient;
  log: Logger;
}

export class KeyFetcher {
  readonly #d: KeyFetcherDeps;
  readonly #cache = new Map<string, ServerKeyRow[]>();
  readonly #inflight = new Map<string, Promise<void>>();
  /** Per server: when we last tried, whether it worked, consecutive failures. */
  readonly #attempts = new Map<string, { at: number; ok: boolean; failures: number }>();
  #running = 0;
  readonly #queue: (() => void)[] = [];
  /** Fetches made (direct or via a notary), for tests and metrics. */
  fetches = 0;

  constructor(deps: KeyFetcherDeps) {
    this.#d = deps;
  }

  /** The key `keyId` of `server` if a signature it made at `ts` (default now) is acceptable, else null. */
  async verifyKey(server: string, keyId: string, ts = Date.now()): Promise<VerifyKey | null> {
    if (server === this.#d.serverName) return this.#ourKey(keyId, ts);
    let rows = await this.#rows(server);
    let row = rows.find((r) => r.keyId === keyId);
    if (!row || !keyValidAt(row, ts)) {
      await this.#refresh(server);
      rows = await this.#rows(server);
      row = rows.find((r) => r.keyId === keyId);
    }
    return row && keyValidAt(row, ts) ? toVerifyKey(row) : null;
  }

  /**
   * Notary: the key responses of `server` we can vouch for (spec POST /_matrix/key/v2/query), each with our
   * signature added. `criteria` maps key ids to a minimum_valid_until_ts; a current key must also be valid until
   * `anyMin` (default now).
   */
  async notaryResponses(
    server: string,
    criteria: Record<string, number | undefined>,
    anyMin?: number,
  ): Promise<object[]> {
    const now = Date.now();
    if (server === this.#d.serverName) return [ourKeysResponse(server, this.#d.signingKey, this.#d.cfg, now)];
    const wanted = Object.entries(criteria);
    const satisfied = (rows: ServerKeyRow[]) =>
      rows.some((r) => r.expiredTs === null && r.validUntilTs >= (anyMin ?? now)) &&
      wanted.every(([id, min]) => rows.some((r) => r.keyId === id && r.validUntilTs >= (min ?? now)));
    let rows = await this.#rows(server);
    if (!satisfied(rows)) {
      await this.#refresh(server);
      rows = await this.#rows(server);
    }
    const responses = new Set(rows.map((r) => r.responseJson));
    return [...responses].map((j) => signJson(JSON.parse(j) as object, this.#d.serverName, this.#d.signingKey));
  }

  #ourKey(keyId: string, ts: number): VerifyKey | null {
    const k = this.#d.signingKey;
    if (keyId === k.keyId)
      return { keyId, publicKey: k.publicKeyBase64, validUntilTs: Number.MAX_SAFE_INTEGER, expiredTs: null };
    const old = this.#d.cfg.oldVerifyKeys[keyId];
    if (!old) return null;
    const v = { keyId, publicKey: old.key, validUntilTs: old.expired_ts, expiredTs: old.expired_ts };
    return keyValidAt(v, ts) ? v : null;
  }

  async #rows(server: string): Promise<ServerKeyRow[]> {
    let rows = this.#cache.get(server);
    if (!rows) {
      rows = await this.#d.store.getServerKeys(server);
      if (this.#cache.size >= MAX_CACHED_SERVERS) this.#cache.clear();
      this.#cache.set(server, rows);
    }
    return rows;
  }

  /** Fetch `server`'s keys unless one fetch is under way (then wait for it) or the backoff says not yet. */
  async #refresh(server: string): Promise<void> {
    const running = this.#inflight.get(server);
    if (running) return running;
    const last = this.#attempts.get(server);
    const now = Date.now();
    if (last) {
      const wait = last.ok
        ? Math.min(MIN_REFETCH_MS, this.#d.cfg.keyFetchBackoffMs)
        : Math.min(this.#d.cfg.keyFetchBackoffMs * 2 ** (last.failures - 1), MAX_BACKOFF_MS);
      if (now - last.at < wait) return;
    }
    const p = this.#limited(() => this.#fetch(server)).finally(() => this.#inflight.delete(server));
    this.#inflight.set(server, p);
    return p;
  }

  async #limited<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#running >= this.#d.cfg.maxConcurrentKeyFetches) await new Promise<void>((r) => this.#queue.push(r));
    this.#running++;
    try {
      return await fn();
    } finally {
      this.#running--;
      this.#queue.shift()?.();
    }
  }

  async #fetch(server: string): Promise<void> {
    const started = Date.now();
    this.fetches++;
    let rows: ServerKeyRow[] | null = null;
    const errors: string[] = [];
    try {
      const body = await this.#d.client.request(server, { method: "GET", path: "/_matrix/key/v2/server", sign: false });
      rows = checkKeyResponse(body, server, Date.now());
    } catch (e) {
      errors.push(`direct: ${(e as Error).message}`);
    }
    for (const notary of rows ? [] : this.#d.cfg.trustedKeyServers) {
      try {
        rows = await this.#viaNotary(server, notary);
        if (rows) break;
      } catch (e) {
        errors.push(`notary ${notary.serverName}: ${(e as Error).message}`);
      }
    }
    const prev = this.#attempts.get(server);
    if (!rows) {
      this.#attempts.set(server, { at: started, ok: false, failures: (prev?.ok === false ? prev.failures : 0) + 1 });
      this.#d.log.warn("could not fetch server keys", { server, errors: errors.join("; ").slice(0, 1000) });
      return;
    }
    await this.#d.store.putServerKeys(rows);
    this.#cache.delete(server);
    this.#attempts.set(server, { at: started, ok: true, failures: 0 });
  }

  async #viaNotary(
    server: string,
    notary: MatrixConfig["federation"]["trustedKeyServers"][number],
  ): Promise<ServerKeyRow[] | null> {
    if (notary.serverName === server) return null;
    const res = await this.#d.client.request<{ server_keys?: unknown }>(notary.serverName, {
      method: "POST",
      path: "/_matrix/key/v2/query",
      body: { server_keys: { [server]: {} } },
      sign: false,
    });
    if (!Array.isArray(res?.server_keys)) throw new AmiError("M_UNKNOWN", "answer without server_keys", {}, 502);
    let best: ServerKeyRow[] | null = null;
    for (const resp of res.server_keys) {
      if (!isJsonObject(resp) || resp.server_name !== server) continue;
      if (!(await this.#notarySigned(resp, notary)))
        throw new AmiError("M_UNAUTHORIZED", "answer not signed by the notary", {}, 502);
      const rows = checkKeyResponse(resp, server, Date.now());
      if (!best || rows[0].validUntilTs > best[0].validUntilTs) best = rows;
    }
    return best;
  }

  /** A notary's answer carries its signature: by a configured verify key, else by a key fetched from it directly. */
  async #notarySigned(resp: object, notary: MatrixConfig["federation"]["trustedKeyServers"][number]): Promise<boolean> {
    const ids = signatureKeyIds(resp, notary.serverName);
    const configured = Object.entries(notary.verifyKeys);
    if (configured.length > 0)
      return configured.some(([id, key]) => ids.includes(id) && verifyJsonSignature(resp, notary.serverName, id, key));
    let rows = await this.#rows(notary.serverName);
    if (!ids.some((id) => rows.some((r) => r.keyId === id && keyValidAt(r, Date.now())))) {
      // Asked inline, outside the fetch limiter and the per-server dedup: this runs inside a fetch holding a slot,
      // and waiting for another slot (or for a fetch queued behind us) could wait forever.
      const body = await this.#d.client.request(notary.serverName, {
        method: "GET",
        path: "/_matrix/key/v2/server",
        sign: false,
      });
      await this.#d.store.putServerKeys(checkKeyResponse(body, notary.serverName, Date.now()));
      this.#cache.delete(notary.serverName);
      rows = await this.#rows(notary.serverName);
    }
    return ids.some((id) => {
      const r = rows.find((x) => x.keyId === id && keyValidAt(x, Date.now()));
      return r !== undefined && verifyJsonSignature(resp, notary.serverName, id, r.publicKey);
    });
  }
}

function toVerifyKey(r: ServerKeyRow): VerifyKey {
  return { keyId: r.keyId, publicKey: r.publicKey, validUntilTs: r.validUntilTs, expiredTs: r.expiredTs };
}
