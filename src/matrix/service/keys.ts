/**
 * End-to-end-encryption rules shared by the key handlers and /sync: who shares rooms with whom, which device
 * lists changed between two stream positions, and the keys/query answer with signatures merged in.
 */
import { AmiError } from "../../core/errors.ts";
import { serverNameOf } from "../events/ids.ts";
import { verifyJsonSignature } from "../events/signing.ts";
import type { JsonObject, Signatures } from "../events/types.ts";
import { devicesChanged } from "../federation/device-lists.ts";
import type { Homeserver } from "../hs.ts";
import type { CrossSigningKeyRow, CrossSigningKeyType, KeySignatureRow } from "../store/keys-types.ts";

/** Device lists changed (uploads, new and deleted devices, cross-signing): one stream write, so /sync wakes. */
export async function deviceListsChanged(hs: Homeserver, userIds: string[]): Promise<void> {
  if (userIds.length === 0) return;
  await hs.stream.write((pos) => hs.store.keys.markDeviceListsChanged(userIds, pos), { kind: "deviceLists", userIds });
}

/**
 * Call after devices were deleted (logout, DELETE /devices): drops their keys and to-device inbox and tells
 * everyone sharing a room. (Not on re-login with the same device ID: the device keeps its keys then.)
 */
export async function devicesDeleted(hs: Homeserver, userId: string, deviceIds: string[]): Promise<void> {
  for (const d of deviceIds) await hs.store.keys.deleteDeviceKeys(userId, d);
  await devicesChanged(hs, userId, deviceIds, true);
}

/** Users joined to at least one room the user is joined to (the user included). */
export async function sharedUsers(hs: Homeserver, userId: string): Promise<Set<string>> {
  const joined = (await hs.store.events.getRoomsForUser(userId))
    .filter((m) => m.membership === "join")
    .map((m) => m.roomId);
  const out = new Set<string>([userId]);
  for (const rows of (await hs.store.events.getMembersOfRooms(joined)).values())
    for (const r of rows) if (r.membership === "join") out.add(r.userId);
  return out;
}

/**
 * device_lists for /sync and GET /keys/changes: `changed` = users sharing a room whose keys changed in
 * (since, upto] or who started sharing a room with the user; `left` = users who no longer share any room.
 */
export async function deviceListsBetween(
  hs: Homeserver,
  userId: string,
  since: number,
  upto: number,
  shared?: Set<string>,
): Promise<{ changed: string[]; left: string[] }> {
  const { store } = hs;
  const sharing = shared ?? (await sharedUsers(hs, userId));
  const joinedNow = new Set<string>();
  const leftNow = new Set<string>();
  const rooms = (await store.events.getRoomsForUser(userId)).map((m) => m.roomId);
  const maxStreams = await store.events.getRoomMaxStreams(rooms);
  for (const roomId of rooms) {
    if ((maxStreams.get(roomId) ?? 0) <= since) continue;
    const events = await store.events.getRoomEvents({
      roomId,
      dir: "f",
      from: since,
      to: upto + 1,
      limit: 10_000,
      types: ["m.room.member"],
    });
    for (const e of events) {
      const membership = e.pdu.content?.membership;
      if (e.stateKey === null) continue;
      const target = e.stateKey === userId ? null : e.stateKey;
      const into = membership === "join" ? joinedNow : membership === "leave" || membership === "ban" ? leftNow : null;
      if (!into) continue;
      if (target) into.add(target);
      else for (const m of await store.events.getMembers(roomId, "join")) into.add(m.userId);
    }
  }
  const changed = new Set<string>();
  for (const u of await store.keys.getDeviceListChanges(since, upto)) if (sharing.has(u)) changed.add(u);
  for (const u of joinedNow) if (sharing.has(u) && u !== userId) changed.add(u);
  const left = [...leftNow].filter((u) => !sharing.has(u) && u !== userId);
  return { changed: [...changed].sort(), left: left.sort() };
}

/** The public key of a cross-signing key object (its single `keys` value), or null. */
export function crossSigningPublicKey(key: JsonObject | undefined): string | null {
  const keys = key?.keys;
  if (!keys || typeof keys !== "object") return null;
  const v = Object.values(keys);
  return v.length === 1 && typeof v[0] === "string" ? v[0] : null;
}

/** Add stored third-party signatures to a key object's `signatures`. */
function withSignatures(key: JsonObject, sigs: KeySignatureRow[]): JsonObject {
  if (sigs.length === 0) return key;
  // Upload checked the shape of `signatures`.
  const signatures: Signatures = { ...((key.signatures ?? {}) as Signatures) };
  for (const s of sigs) signatures[s.signerUserId] = { ...signatures[s.signerUserId], [s.signerKeyId]: s.signature };
  return { ...key, signatures };
}

const isLocal = (hs: Homeserver, userId: string) => serverNameOf(userId) === hs.serverName;

/** The POST /keys/query response (spec: keys.yaml); device and cross-signing keys as their owners uploaded them. */
export interface KeysQueryResponse {
  failures: JsonObject;
  device_keys: Record<string, Record<string, JsonObject>>;
  master_keys: Record<string, JsonObject>;
  self_signing_keys: Record<string, JsonObject>;
  user_signing_keys?: Record<string, JsonObject>;
}

/** POST /keys/query: device keys and cross-signing keys of local users; unknown users are simply absent. */
export async function queryKeys(
  hs: Homeserver,
  requester: string,
  wanted: Record<string, string[]>,
): Promise<KeysQueryResponse> {
  const users = Object.keys(wanted).filter((u) => isLocal(hs, u));
  const [devices, cross, sigs] = await Promise.all([
    hs.store.keys.getDeviceKeys(users),
    hs.store.keys.getCrossSigningKeys(users),
    hs.store.keys.getKeySignatures(users),
  ]);
  const names = new Map<string, string | null>();
  for (const u of new Set(devices.map((d) => d.userId)))
    for (const d of await hs.store.accounts.listDevices(u)) names.set(`${u}\0${d.deviceId}`, d.displayName);
  const sigsOf = (userId: string, keyId: string) =>
    sigs.filter((s) => s.targetUserId === userId && s.targetKeyId === keyId);

  const device_keys: KeysQueryResponse["device_keys"] = {};
  for (const u of users) device_keys[u] = {};
  for (const d of devices) {
    const only = wanted[d.userId];
    if (only.length > 0 && !only.includes(d.deviceId)) continue;
    const k = withSignatures(d.keys, sigsOf(d.userId, d.deviceId));
    const name = names.get(`${d.userId}\0${d.deviceId}`);
    device_keys[d.userId][d.deviceId] = name ? { ...k, unsigned: { device_display_name: name } } : k;
  }
  const out: KeysQueryResponse = { failures: {}, device_keys, master_keys: {}, self_signing_keys: {} };
  const userSigning: Record<string, JsonObject> = {};
  for (const c of cross) {
    const pub = crossSigningPublicKey(c.key);
    const key = pub ? withSignatures(c.key, sigsOf(c.userId, pub)) : c.key;
    if (c.type === "master") out.master_keys[c.userId] = key;
    else if (c.type === "self_signing") out.self_signing_keys[c.userId] = key;
    else if (c.userId === requester) userSigning[c.userId] = key;
  }
  out.user_signing_keys = userSigning;
  return out;
}

/** The user's cross-signing keys by type. */
export async function crossSigningKeysOf(
  hs: Homeserver,
  userId: string,
): Promise<Partial<Record<CrossSigningKeyType, JsonObject>>> {
  const out: Partial<Record<CrossSigningKeyType, JsonObject>> = {};
  for (const r of (await hs.store.keys.getCrossSigningKeys([userId])) as CrossSigningKeyRow[]) out[r.type] = r.key;
  return out;
}

/** Is `obj` signed by `signerUserId` with the ed25519 key `publicKey`? */
export function signedBy(obj: object, signerUserId: string, publicKey: string): boolean {
  return verifyJsonSignature(obj, signerUserId, `ed25519:${publicKey}`, publicKey);
}

/** A claim/query map that names remote or malformed user IDs: only local users are served. */
export function assertUserId(userId: string): void {
  if (!userId.startsWith("@") || !userId.includes(":"))
    throw new AmiError("M_INVALID_PARAM", `'${userId.slice(0, 100)}' is not a user ID`);
}
