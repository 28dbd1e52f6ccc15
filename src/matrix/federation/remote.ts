/**
 * The client API's view of other servers (the asking side of query.ts, user-keys.ts): keys/query and keys/claim
 * for remote users fan out to their servers in parallel under the request's timeout, each failure listed by
 * server name; remote profiles (cached briefly) and remote room aliases ask the user's or alias's server.
 * Device lists of remote users we share a room with are cached and kept right by their servers' device-list EDUs
 * (device-lists.ts): keys/query answers those from the cache; anyone else's keys are asked each time.
 */
import { AmiError } from "../../core/errors.ts";
import { isValidServerName, serverNameOf } from "../events/ids.ts";
import type { JsonObject } from "../events/types.ts";
import type { Homeserver } from "../hs.ts";
import { queryFromCache } from "./device-lists.ts";

/** Spec default for keys/query and keys/claim `timeout` (ms); we never wait longer than this ceiling either. */
export const DEFAULT_KEYS_TIMEOUT_MS = 10_000;
const MAX_KEYS_TIMEOUT_MS = 60_000;
const PROFILE_TTL_MS = 60_000;
const PROFILE_CACHE_MAX = 10_000;

type Failures = Record<string, JsonObject>;

/**
 * Group the remote users of a request by their server. IDs that name no valid server are left out, as unknown
 * local users are (`failures` is keyed by server name, and there is none to name).
 */
function byServer<T>(hs: Homeserver, wanted: Record<string, T>): Map<string, Record<string, T>> {
  const out = new Map<string, Record<string, T>>();
  for (const [userId, v] of Object.entries(wanted)) {
    const server = serverNameOf(userId);
    if (server === hs.serverName || !server || !isValidServerName(server)) continue;
    const m = out.get(server) ?? {};
    out.set(server, m);
    m[userId] = v;
  }
  return out;
}

function failureOf(e: unknown): JsonObject {
  if (e instanceof AmiError) return { status: e.status, errcode: e.code, message: e.message };
  return { status: 503, message: e instanceof Error ? e.message : String(e) };
}

/** Run `ask` for every server at once, bounded by `timeoutMs`; a server that fails or is late goes in failures. */
async function fanOut<T>(
  hs: Homeserver,
  servers: Map<string, T>,
  timeoutMs: number | undefined,
  failures: Failures,
  ask: (server: string, part: T, signal: AbortSignal) => Promise<void>,
): Promise<void> {
  if (servers.size === 0) return;
  const ms = Math.min(timeoutMs ?? DEFAULT_KEYS_TIMEOUT_MS, MAX_KEYS_TIMEOUT_MS);
  const signal = AbortSignal.timeout(Math.max(ms, 1));
  await Promise.all(
    [...servers].map(async ([server, part]) => {
      try {
        await ask(server, part, signal);
      } catch (e) {
        failures[server] = signal.aborted
          ? { status: 504, message: `${server} did not answer within ${ms} ms` }
          : failureOf(e);
        hs.log.debug("federation: remote key request failed", { server, err: String(e) });
      }
    }),
  );
}

const isObject = (v: unknown): v is JsonObject => typeof v === "object" && v !== null && !Array.isArray(v);

/** Keep only entries for users of `server` (a server answers for its own users, nobody else's). */
function ownUsers(server: string, m: unknown): Record<string, JsonObject> {
  const out: Record<string, JsonObject> = {};
  if (!isObject(m)) return out;
  for (const [u, v] of Object.entries(m)) if (serverNameOf(u) === server && isObject(v)) out[u] = v;
  return out;
}

export interface RemoteKeys {
  device_keys: Record<string, Record<string, JsonObject>>;
  master_keys: Record<string, JsonObject>;
  self_signing_keys: Record<string, JsonObject>;
  failures: Failures;
}

/** POST /keys/query for the remote users in `wanted` (local ones are skipped). */
export async function queryRemoteKeys(
  hs: Homeserver,
  wanted: Record<string, string[]>,
  timeoutMs?: number,
): Promise<RemoteKeys> {
  const out: RemoteKeys = { device_keys: {}, master_keys: {}, self_signing_keys: {}, failures: {} };
  await fanOut(hs, byServer(hs, wanted), timeoutMs, out.failures, async (server, whole, signal) => {
    const part = await queryFromCache(hs, whole, out, signal);
    if (Object.keys(part).length === 0) return;
    const r = await hs.federation.client.request<JsonObject>(server, {
      method: "POST",
      path: "/_matrix/federation/v1/user/keys/query",
      body: { device_keys: part },
      signal,
    });
    for (const [u, devices] of Object.entries(ownUsers(server, r.device_keys))) {
      const kept: Record<string, JsonObject> = {};
      // A device's keys must name that user and device (the client checks their signatures).
      for (const [d, k] of Object.entries(devices))
        if (isObject(k) && k.user_id === u && k.device_id === d) kept[d] = k;
      out.device_keys[u] = kept;
    }
    for (const [u, k] of Object.entries(ownUsers(server, r.master_keys))) if (k.user_id === u) out.master_keys[u] = k;
    for (const [u, k] of Object.entries(ownUsers(server, r.self_signing_keys)))
      if (k.user_id === u) out.self_signing_keys[u] = k;
  });
  return out;
}

/** POST /keys/claim for the remote users in `wanted`. */
export async function claimRemoteKeys(
  hs: Homeserver,
  wanted: Record<string, Record<string, string>>,
  timeoutMs?: number,
): Promise<{ one_time_keys: Record<string, Record<string, JsonObject>>; failures: Failures }> {
  const out = { one_time_keys: {} as Record<string, Record<string, JsonObject>>, failures: {} as Failures };
  await fanOut(hs, byServer(hs, wanted), timeoutMs, out.failures, async (server, part, signal) => {
    const r = await hs.federation.client.request<JsonObject>(server, {
      method: "POST",
      path: "/_matrix/federation/v1/user/keys/claim",
      body: { one_time_keys: part },
      signal,
    });
    for (const [u, devices] of Object.entries(ownUsers(server, r.one_time_keys))) {
      const asked = part[u] ?? {};
      const kept: Record<string, JsonObject> = {};
      for (const [d, k] of Object.entries(devices)) if (d in asked && isObject(k)) kept[d] = k;
      out.one_time_keys[u] = kept;
    }
  });
  return out;
}

const profileCaches = new WeakMap<Homeserver, Map<string, { at: number; value: Record<string, string> }>>();

/** A remote user's displayname/avatar_url from their server (query/profile), cached for a minute. */
export async function remoteProfile(hs: Homeserver, userId: string): Promise<Record<string, string>> {
  const server = serverNameOf(userId);
  if (!server || !isValidServerName(server)) throw new AmiError("M_INVALID_PARAM", "Invalid user ID");
  let cache = profileCaches.get(hs);
  if (!cache) {
    cache = new Map();
    profileCaches.set(hs, cache);
  }
  const hit = cache.get(userId);
  if (hit && Date.now() - hit.at < PROFILE_TTL_MS) return hit.value;
  const r = await hs.federation.client.request<JsonObject>(server, {
    method: "GET",
    path: `/_matrix/federation/v1/query/profile?user_id=${encodeURIComponent(userId)}`,
  });
  const value: Record<string, string> = {};
  if (typeof r.displayname === "string") value.displayname = r.displayname.slice(0, 1000);
  if (typeof r.avatar_url === "string" && r.avatar_url.startsWith("mxc://"))
    value.avatar_url = r.avatar_url.slice(0, 1000);
  if (cache.size >= PROFILE_CACHE_MAX) cache.delete(cache.keys().next().value as string);
  cache.set(userId, { at: Date.now(), value });
  return value;
}

/** Where a remote alias points, asked of the alias's server (query/directory). */
export async function remoteAlias(hs: Homeserver, alias: string): Promise<{ room_id: string; servers: string[] }> {
  const server = serverNameOf(alias);
  if (!server || !isValidServerName(server)) throw new AmiError("M_INVALID_PARAM", "Invalid room alias");
  const r = await hs.federation.client.request<JsonObject>(server, {
    method: "GET",
    path: `/_matrix/federation/v1/query/directory?room_alias=${encodeURIComponent(alias)}`,
  });
  if (typeof r.room_id !== "string" || !r.room_id.startsWith("!"))
    throw new AmiError("AMI_UNAVAILABLE", `${server} answered query/directory without a room_id`, {}, 502);
  const servers = Array.isArray(r.servers)
    ? r.servers.filter((s): s is string => typeof s === "string" && isValidServerName(s)).slice(0, 100)
    : [];
  if (!servers.includes(server)) servers.unshift(server);
  return { room_id: r.room_id, servers };
}
