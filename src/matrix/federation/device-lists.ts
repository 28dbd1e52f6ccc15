/**
 * Device lists across servers (spec server-server "Device Management", the `m.device_list_update` and
 * `m.signing_key_update` EDUs), the piece that lets clients on two servers keep encrypting to each other's current
 * devices.
 *
 * Outgoing: every change of one of our users' devices (keys uploaded, display name, deletion) is its own stream
 * write, so it gets its own position: that position is the EDU's `stream_id` (unique per user, increasing) and the
 * user's previous update position (store.deviceLists, read and replaced inside the same serialised write) is its
 * `prev_id`. Other device-list changes (cross-signing keys, signatures by others) do not enter this chain: they
 * carry no stream ID, so a receiver could not follow them. The EDU goes to every
 * server with a member joined to a room the user is joined to. Cross-signing key changes send `m.signing_key_update`.
 * `user/devices` answers with the user's last update position as `stream_id`, so a resync and the EDUs after it chain.
 *
 * Incoming: only for a user of the origin server who shares a room with one of our users (the servers we track are
 * exactly those in our rooms' member state; an update for anyone else is dropped and any cached list of theirs
 * forgotten). The cache (store.deviceLists, one row per user) is updated only along the chain: an update whose
 * `prev_id` is the cached `stream_id` is applied; an older one is ignored; a gap (a lost EDU, a restart of the
 * sender's queue) resyncs the whole list from `user/devices` (in the background; if that fails the row is dropped,
 * so the next keys/query asks again). With no row nothing is cached: the first keys/query fetches the list. Either
 * way the user's device list is marked changed, so our clients see them in /sync `device_lists.changed` and
 * `/keys/changes` and re-query. A remote user's membership change anywhere drops their row (they may have been
 * outside our rooms and unheard meanwhile), and so does a remote member's
 * when our last user sharing a room with them leaves.
 *
 * Queries (remote.ts): client keys/query for a remote user we share a room with is answered from the row, fetching
 * it with `user/devices` when absent; for anyone else it asks `user/keys/query` as before, uncached.
 */
import { serverNameOf } from "../events/ids.ts";
import type { JsonObject } from "../events/types.ts";
import type { Homeserver } from "../hs.ts";
import { deviceListsChanged, queryKeys } from "../service/keys.ts";
import type { RemoteDevice, RemoteDeviceListRow } from "../store/device-lists-types.ts";

const MAX_DEVICES = 10_000;
const MAX_NAME = 1000;
/**
 * Most bytes (as JSON) of one device's keys or one cross-signing key kept (a real one is under 2 KiB with a few
 * signatures): the user's whole row is rewritten on each update, so what one server may make us hold and rewrite
 * stays bounded (MAX_DEVICES of these). A bigger one is kept as no keys.
 */
const MAX_KEYS_BYTES = 8192;
const small = (k: JsonObject) => JSON.stringify(k).length <= MAX_KEYS_BYTES;

const isObject = (v: unknown): v is JsonObject => typeof v === "object" && v !== null && !Array.isArray(v);

/** Work on one user's row, one at a time per user (EDUs, resyncs and fetches of the same user in order). */
const locks = new WeakMap<Homeserver, Map<string, Promise<unknown>>>();
function withUser<T>(hs: Homeserver, userId: string, fn: () => Promise<T>): Promise<T> {
  let m = locks.get(hs);
  if (!m) {
    m = new Map();
    locks.set(hs, m);
  }
  const prev = m.get(userId) ?? Promise.resolve();
  const run = prev.then(fn, fn);
  const tail = run.then(
    () => undefined,
    () => undefined,
  );
  m.set(userId, tail);
  void tail.then(() => {
    if (m.get(userId) === tail) m.delete(userId);
  });
  return run;
}

/** The other servers with a member joined to a room `userId` is joined to. */
async function serversSharing(hs: Homeserver, userId: string): Promise<Set<string>> {
  const out = new Set<string>();
  const rooms = (await hs.store.events.getRoomsForUser(userId)).filter((m) => m.membership === "join");
  if (rooms.length === 0) return out;
  for (const members of (await hs.store.events.getMembersOfRooms(rooms.map((r) => r.roomId))).values())
    for (const m of members) {
      if (m.membership !== "join") continue;
      const s = serverNameOf(m.userId);
      if (s && s !== hs.serverName) out.add(s);
    }
  return out;
}

/** Does the remote user share a room with one of our users (joined both)? Such users' device lists we track. */
export async function sharesRoom(hs: Homeserver, userId: string): Promise<boolean> {
  // One indexed query stopping at the first shared room (it read every member of every room the user is in, per
  // EDU: bench/matrix/shares-room.ts).
  return hs.store.events.sharesRoomWithServer(userId, hs.serverName);
}

function warn(hs: Homeserver, what: string, e: unknown): void {
  hs.log.warn(`federation: ${what}`, { err: String(e).slice(0, 300) });
}

// ---------------------------------------------------------------------------------------------------------------
// Outgoing

/**
 * Our user's devices changed (keys uploaded, renamed, or `deleted`): one stream write per device, each marking the
 * user's device list changed (local /sync) and, with federation on, one `m.device_list_update` per device to the
 * servers sharing a room with the user.
 */
export async function devicesChanged(
  hs: Homeserver,
  userId: string,
  deviceIds: string[],
  deleted = false,
): Promise<void> {
  if (!hs.config.federation.enabled || deviceIds.length === 0 || serverNameOf(userId) !== hs.serverName) {
    await deviceListsChanged(hs, [userId]);
    return;
  }
  for (const deviceId of new Set(deviceIds)) {
    const { pos, prev } = await hs.stream.write(
      async (pos) => {
        const prev = (await hs.store.deviceLists.getDeviceListStreams([userId])).get(userId);
        await hs.store.deviceLists.setDeviceListStream(userId, pos);
        await hs.store.keys.markDeviceListsChanged([userId], pos);
        return { pos, prev };
      },
      { kind: "deviceLists", userIds: [userId] },
    );
    try {
      const servers = await serversSharing(hs, userId);
      if (servers.size === 0) continue;
      const content: JsonObject = { user_id: userId, device_id: deviceId, stream_id: pos, prev_id: prev ? [prev] : [] };
      const device = deleted ? null : await hs.store.accounts.getDevice(userId, deviceId);
      if (!device) content.deleted = true;
      else {
        if (device.displayName) content.device_display_name = device.displayName;
        const k = (await queryKeys(hs, "", { [userId]: [deviceId] })).device_keys[userId]?.[deviceId];
        if (k) {
          const { unsigned: _u, ...keys } = k;
          content.keys = keys;
        }
      }
      // Coalesced per device while queued (a server that is down gets the newest; the prev_id gap that leaves
      // makes it resync, which is what a missed update is for), so its queue stays bounded.
      hs.federation.sender.sendEdu(
        servers,
        { edu_type: "m.device_list_update", content },
        `${userId}\u0000${deviceId}`,
      );
    } catch (e) {
      warn(hs, "cannot send m.device_list_update", e);
    }
  }
}

/** Our user's cross-signing keys (or their signatures) changed: mark it, and send `m.signing_key_update`. */
export async function crossSigningChanged(hs: Homeserver, userId: string): Promise<void> {
  await deviceListsChanged(hs, [userId]);
  if (!hs.config.federation.enabled || serverNameOf(userId) !== hs.serverName) return;
  try {
    const servers = await serversSharing(hs, userId);
    if (servers.size === 0) return;
    const keys = await queryKeys(hs, "", { [userId]: [] });
    const content: JsonObject = { user_id: userId };
    if (keys.master_keys[userId]) content.master_key = keys.master_keys[userId];
    if (keys.self_signing_keys[userId]) content.self_signing_key = keys.self_signing_keys[userId];
    hs.federation.sender.sendEdu(servers, { edu_type: "m.signing_key_update", content }, userId);
  } catch (e) {
    warn(hs, "cannot send m.signing_key_update", e);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Incoming and the cache

/** Device keys as a server published them: must name that user and device. */
function deviceKeysOf(userId: string, deviceId: string, k: unknown): JsonObject | null {
  return isObject(k) && k.user_id === userId && k.device_id === deviceId && small(k) ? k : null;
}

function crossKeyOf(userId: string, k: unknown): JsonObject | null {
  return isObject(k) && k.user_id === userId && isObject(k.keys) && small(k) ? k : null;
}

const nameOf = (v: unknown) => (typeof v === "string" && v !== "" ? v.slice(0, MAX_NAME) : null);

/** GET user/devices of a remote user, checked, as a row (not stored). */
async function fetchDeviceList(hs: Homeserver, userId: string, signal?: AbortSignal): Promise<RemoteDeviceListRow> {
  const server = serverNameOf(userId) ?? "";
  const r = await hs.federation.client.request<JsonObject>(server, {
    method: "GET",
    path: `/_matrix/federation/v1/user/devices/${encodeURIComponent(userId)}`,
    signal,
  });
  if (r.user_id !== userId || !Number.isSafeInteger(r.stream_id) || !Array.isArray(r.devices))
    throw new Error(`${server} answered user/devices for ${userId} without user_id, stream_id or devices`);
  const devices: Record<string, RemoteDevice> = {};
  for (const d of r.devices.slice(0, MAX_DEVICES)) {
    if (!isObject(d) || typeof d.device_id !== "string" || d.device_id === "" || d.device_id.length > 255) continue;
    devices[d.device_id] = {
      keys: deviceKeysOf(userId, d.device_id, d.keys),
      displayName: nameOf(d.device_display_name),
    };
  }
  return {
    userId,
    streamId: r.stream_id as number,
    devices,
    masterKey: crossKeyOf(userId, r.master_key),
    selfSigningKey: crossKeyOf(userId, r.self_signing_key),
    updatedTs: Date.now(),
  };
}

/** Counters for tests and the monitor (per homeserver). */
export interface DeviceListCounters {
  applied: number;
  resyncs: number;
  resyncFailures: number;
  fetched: number;
  fromCache: number;
}
const counters = new WeakMap<Homeserver, DeviceListCounters>();
export function deviceListCounters(hs: Homeserver): DeviceListCounters {
  let c = counters.get(hs);
  if (!c) {
    c = { applied: 0, resyncs: 0, resyncFailures: 0, fetched: 0, fromCache: 0 };
    counters.set(hs, c);
  }
  return c;
}

/** Users whose resync is queued (not yet started), per homeserver. */
const resyncing = new WeakMap<Homeserver, Set<string>>();

/**
 * Replace the user's row from their server; on failure the row goes. The fetch runs outside the user's lock (bounded
 * by the federation request timeout), so local keys/query of the user answer from the cache meanwhile instead of
 * waiting for a slow or hung server; the answer is applied under the lock, unless updates applied meanwhile moved
 * the row past it.
 */
async function resync(hs: Homeserver, userId: string): Promise<void> {
  deviceListCounters(hs).resyncs++;
  let fetched: RemoteDeviceListRow | null = null;
  let failure: unknown = null;
  // What we held when the resync started (a gap means it is not to be trusted, whatever its stream_id).
  const [before] = await hs.store.deviceLists.getRemoteDeviceLists([userId]);
  try {
    fetched = await fetchDeviceList(hs, userId, AbortSignal.timeout(hs.config.federation.requestTimeoutMs));
  } catch (e) {
    failure = e;
  }
  await withUser(hs, userId, async () => {
    if (fetched) {
      const [row] = await hs.store.deviceLists.getRemoteDeviceLists([userId]);
      // Replaced, unless updates applied meanwhile moved the row past the answer.
      if (!row || row.streamId === before?.streamId || row.streamId <= fetched.streamId)
        await hs.store.deviceLists.putRemoteDeviceList(fetched);
    } else {
      deviceListCounters(hs).resyncFailures++;
      warn(hs, `cannot resync the device list of ${userId}`, failure);
      await hs.store.deviceLists.deleteRemoteDeviceLists([userId]);
    }
    await deviceListsChanged(hs, [userId]);
  });
}

/** The `m.device_list_update` EDU; false when dropped (invalid, not the origin's user, not sharing a room). */
export async function applyDeviceListUpdate(hs: Homeserver, origin: string, c: JsonObject): Promise<boolean> {
  const { user_id: userId, device_id: deviceId, stream_id: streamId, prev_id: prevIds, deleted } = c;
  if (typeof userId !== "string" || serverNameOf(userId) !== origin) return false;
  if (typeof deviceId !== "string" || deviceId === "" || deviceId.length > 255) return false;
  if (!Number.isSafeInteger(streamId) || (streamId as number) < 0) return false;
  const prev = prevIds === undefined ? [] : prevIds;
  if (!Array.isArray(prev) || prev.length > 100 || !prev.every((p) => Number.isSafeInteger(p))) return false;
  if (deleted !== undefined && typeof deleted !== "boolean") return false;
  const stream = streamId as number;
  if (!(await sharesRoom(hs, userId))) {
    await hs.store.deviceLists.deleteRemoteDeviceLists([userId]);
    return false;
  }
  return withUser(hs, userId, async () => {
    const [row] = await hs.store.deviceLists.getRemoteDeviceLists([userId]);
    if (row && stream <= row.streamId) return true; // already covered by what we hold
    // Chained: every earlier update it follows is covered by what we hold (none at all for the first one).
    const chained = row && prev.every((p) => p <= row.streamId);
    if (!row) {
      // Not cached: nothing to keep right; our clients re-query and the query fetches the list.
      await deviceListsChanged(hs, [userId]);
      return true;
    }
    if (!chained) {
      // A gap: an update we never got. Resync in the background (the transaction is not held up by it); one at a
      // time per user, so a burst of gapped updates costs one fetch, not one each.
      let pending = resyncing.get(hs);
      if (!pending) {
        pending = new Set();
        resyncing.set(hs, pending);
      }
      if (pending.has(userId)) return true;
      const set = pending;
      set.add(userId);
      // Started after this update's lock is released; not under the lock itself (resync takes it to apply).
      setImmediate(() => {
        set.delete(userId);
        resync(hs, userId).catch((e) => warn(hs, "device list resync failed", e));
      });
      return true;
    }
    const devices = { ...row.devices };
    // A server can only grow its own user's row, but not without bound.
    if (deleted !== true && !(deviceId in devices) && Object.keys(devices).length >= MAX_DEVICES) return false;
    if (deleted === true) delete devices[deviceId];
    else
      devices[deviceId] = { keys: deviceKeysOf(userId, deviceId, c.keys), displayName: nameOf(c.device_display_name) };
    await hs.store.deviceLists.putRemoteDeviceList({ ...row, streamId: stream, devices, updatedTs: Date.now() });
    deviceListCounters(hs).applied++;
    await deviceListsChanged(hs, [userId]);
    return true;
  });
}

/** The `m.signing_key_update` EDU: the cached master / self-signing keys replaced, the list marked changed. */
export async function applySigningKeyUpdate(hs: Homeserver, origin: string, c: JsonObject): Promise<boolean> {
  const userId = c.user_id;
  if (typeof userId !== "string" || serverNameOf(userId) !== origin) return false;
  const master = c.master_key === undefined ? undefined : crossKeyOf(userId, c.master_key);
  const selfSigning = c.self_signing_key === undefined ? undefined : crossKeyOf(userId, c.self_signing_key);
  if (master === null || selfSigning === null || (master === undefined && selfSigning === undefined)) return false;
  if (!(await sharesRoom(hs, userId))) {
    await hs.store.deviceLists.deleteRemoteDeviceLists([userId]);
    return false;
  }
  return withUser(hs, userId, async () => {
    const [row] = await hs.store.deviceLists.getRemoteDeviceLists([userId]);
    if (row)
      await hs.store.deviceLists.putRemoteDeviceList({
        ...row,
        masterKey: master ?? row.masterKey,
        selfSigningKey: selfSigning ?? row.selfSigningKey,
        updatedTs: Date.now(),
      });
    await deviceListsChanged(hs, [userId]);
    return true;
  });
}

/**
 * A membership changed in a room (called after it is persisted). Rows are only kept for users sharing a room with
 * us, so that a list we hold was kept right by its server's updates all along: a remote user's membership change
 * drops their row (they may have been outside our rooms and unheard); one of our users leaving drops the rows of
 * the room's remote members who no longer share any room with us.
 */
export function membershipChanged(hs: Homeserver, roomId: string, userId: string, membership: unknown): void {
  const drop = (users: string[]) =>
    Promise.all(users.map((u) => withUser(hs, u, () => hs.store.deviceLists.deleteRemoteDeviceLists([u]))));
  const run = async () => {
    if (serverNameOf(userId) !== hs.serverName) {
      await drop([userId]);
      return;
    }
    if (membership !== "leave" && membership !== "ban") return;
    const remote = (await hs.store.events.getMembers(roomId, "join"))
      .map((m) => m.userId)
      .filter((u) => serverNameOf(u) !== hs.serverName);
    if (remote.length === 0) return;
    const held = (await hs.store.deviceLists.getRemoteDeviceLists(remote)).map((r) => r.userId);
    const gone: string[] = [];
    for (const u of held) if (!(await sharesRoom(hs, u))) gone.push(u);
    await drop(gone);
  };
  void run().catch((e) => warn(hs, "cannot drop cached device lists", e));
}

/**
 * A remote user's master and self-signing keys as we hold them (for our users' signatures of them: keys/signatures
 * upload); fetched into the cache when absent and we share a room, else none.
 */
export async function remoteCrossSigningKeys(
  hs: Homeserver,
  userId: string,
): Promise<{ master?: JsonObject; self_signing?: JsonObject }> {
  if (!hs.config.federation.enabled || serverNameOf(userId) === hs.serverName) return {};
  const out: CachedKeys = { device_keys: {}, master_keys: {}, self_signing_keys: {} };
  await queryFromCache(hs, { [userId]: [] }, out, AbortSignal.timeout(10_000));
  const keys: { master?: JsonObject; self_signing?: JsonObject } = {};
  if (out.master_keys[userId]) keys.master = out.master_keys[userId];
  if (out.self_signing_keys[userId]) keys.self_signing = out.self_signing_keys[userId];
  return keys;
}

export interface CachedKeys {
  device_keys: Record<string, Record<string, JsonObject>>;
  master_keys: Record<string, JsonObject>;
  self_signing_keys: Record<string, JsonObject>;
}

/**
 * keys/query for `part` (users of one remote server): users we share a room with are answered from the cache,
 * fetched with user/devices when absent (stored); the others are returned for the caller to ask uncached.
 */
export async function queryFromCache(
  hs: Homeserver,
  part: Record<string, string[]>,
  out: CachedKeys,
  signal: AbortSignal,
): Promise<Record<string, string[]>> {
  const rest: Record<string, string[]> = {};
  const tracked: string[] = [];
  for (const u of Object.keys(part)) {
    if (await sharesRoom(hs, u)) tracked.push(u);
    else rest[u] = part[u];
  }
  const c = deviceListCounters(hs);
  const CONCURRENCY = 8;
  for (let i = 0; i < tracked.length; i += CONCURRENCY)
    await Promise.all(
      tracked.slice(i, i + CONCURRENCY).map(async (u) => {
        // Read under the user's lock (after updates in progress); a fetch runs outside it, stored under it unless
        // a row appeared meanwhile.
        let row = await withUser(hs, u, async () => {
          const [have] = await hs.store.deviceLists.getRemoteDeviceLists([u]);
          return have ?? null;
        });
        if (row) c.fromCache++;
        else {
          const fetched = await fetchDeviceList(hs, u, signal);
          c.fetched++;
          row = await withUser(hs, u, async () => {
            const [have] = await hs.store.deviceLists.getRemoteDeviceLists([u]);
            if (have && have.streamId > fetched.streamId) return have;
            await hs.store.deviceLists.putRemoteDeviceList(fetched);
            return fetched;
          });
        }
        const only = part[u];
        const devices: Record<string, JsonObject> = {};
        for (const [d, dev] of Object.entries(row.devices)) {
          if (!dev.keys || (only.length > 0 && !only.includes(d))) continue;
          devices[d] = dev.displayName
            ? { ...dev.keys, unsigned: { device_display_name: dev.displayName } }
            : { ...dev.keys };
        }
        out.device_keys[u] = devices;
        if (row.masterKey) out.master_keys[u] = row.masterKey;
        if (row.selfSigningKey) out.self_signing_keys[u] = row.selfSigningKey;
      }),
    );
  return rest;
}
