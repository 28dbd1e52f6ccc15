/**
 * E2EE across servers, the serving side (spec server-server user_devices.yaml, user_keys.yaml): another server
 * asks for a local user's device list, their device and cross-signing keys, or claims one-time (or fallback) keys
 * of their devices. Answers come from the same store and rules as the client API (service/keys.ts). Only users of
 * this server may be named: anyone else is a 403 M_FORBIDDEN (we do not relay for other servers).
 */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { isValidUserId, serverNameOf } from "../events/ids.ts";
import type { Homeserver } from "../hs.ts";
import type { Route } from "../http/types.ts";
import { queryKeys } from "../service/keys.ts";
import type { KeyClaim } from "../store/keys-types.ts";
import { parseBody } from "../validate.ts";
import { signedRoute } from "./routes.ts";

const MAX_KEYS = 1000;
const id = z.string().min(1).max(255);
const queryBody = z.object({ device_keys: z.record(id, z.array(id).max(MAX_KEYS)) });
const claimBody = z.object({ one_time_keys: z.record(id, z.record(id, z.string().min(1).max(255))) });

/** Throws unless every user ID is a valid ID of this server. */
function onlyLocal(hs: Homeserver, userIds: string[]): void {
  if (userIds.length > MAX_KEYS) throw new AmiError("M_INVALID_PARAM", `at most ${MAX_KEYS} users per request`);
  for (const u of userIds) {
    if (!isValidUserId(u)) throw new AmiError("M_INVALID_PARAM", `'${u.slice(0, 100)}' is not a user ID`);
    if (serverNameOf(u) !== hs.serverName)
      throw new AmiError("M_FORBIDDEN", `${u.slice(0, 100)} is not a user of ${hs.serverName}`);
  }
}

export const userKeyRoutes: Route[] = [
  /** GET /_matrix/federation/v1/user/devices/{userId} — the device list, keys and cross-signing keys. */
  signedRoute({
    method: "GET",
    paths: ["/_matrix/federation/v1/user/devices/{userId}"],
    async handler(req) {
      const { hs } = req;
      const userId = req.params.userId;
      onlyLocal(hs, [userId]);
      // The user's last device-list update position, read first: it is the prev_id of the next
      // m.device_list_update we send (device-lists.ts), so the asker's snapshot and our EDUs after it chain; a change
      // racing this read shows as a later update whose prev_id is covered by this snapshot.
      const stream_id = (await hs.store.deviceLists.getDeviceListStreams([userId])).get(userId) ?? 0;
      const keys = await queryKeys(hs, "", { [userId]: [] });
      const names = new Map((await hs.store.accounts.listDevices(userId)).map((d) => [d.deviceId, d.displayName]));
      const devices = Object.entries(keys.device_keys[userId] ?? {}).map(([deviceId, k]) => {
        const { unsigned: _u, ...plain } = k;
        const name = names.get(deviceId);
        return name
          ? { device_id: deviceId, keys: plain, device_display_name: name }
          : { device_id: deviceId, keys: plain };
      });
      const out: Record<string, unknown> = { user_id: userId, stream_id, devices };
      if (keys.master_keys[userId]) out.master_key = keys.master_keys[userId];
      if (keys.self_signing_keys[userId]) out.self_signing_key = keys.self_signing_keys[userId];
      return { json: out };
    },
  }),
  /** POST /_matrix/federation/v1/user/keys/query — device and cross-signing keys of local users. */
  signedRoute({
    method: "POST",
    paths: ["/_matrix/federation/v1/user/keys/query"],
    async handler(req) {
      const b = parseBody(queryBody, req.body);
      onlyLocal(req.hs, Object.keys(b.device_keys));
      // The requester is a server: user-signing keys are only ever shown to their owner, so never here.
      const { device_keys, master_keys, self_signing_keys } = await queryKeys(req.hs, "", b.device_keys);
      return { json: { device_keys, master_keys, self_signing_keys } };
    },
  }),
  /** POST /_matrix/federation/v1/user/keys/claim — one-time keys (a fallback key when none is left). */
  signedRoute({
    method: "POST",
    paths: ["/_matrix/federation/v1/user/keys/claim"],
    async handler(req) {
      const { hs } = req;
      const b = parseBody(claimBody, req.body);
      onlyLocal(hs, Object.keys(b.one_time_keys));
      const claims: KeyClaim[] = [];
      for (const [userId, devices] of Object.entries(b.one_time_keys))
        for (const [deviceId, algorithm] of Object.entries(devices)) claims.push({ userId, deviceId, algorithm });
      if (claims.length > MAX_KEYS) throw new AmiError("M_INVALID_PARAM", `at most ${MAX_KEYS} claims`);
      const one_time_keys: Record<string, Record<string, Record<string, unknown>>> = {};
      for (const k of await hs.store.keys.claimKeys(claims)) {
        one_time_keys[k.userId] ??= {};
        one_time_keys[k.userId][k.deviceId] = { [k.keyId]: k.key };
      }
      return { json: { one_time_keys } };
    },
  }),
];
