/** Spec section "End-to-end encryption: key management API" (keys.yaml): upload, query, claim, changes. */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { serverNameOf } from "../events/ids.ts";
import { verifyJsonSignature } from "../events/signing.ts";
import { devicesChanged } from "../federation/device-lists.ts";
import { claimRemoteKeys, queryRemoteKeys } from "../federation/remote.ts";
import type { Homeserver } from "../hs.ts";
import { json, type Route } from "../http/types.ts";
import { crossSigningPublicKey, deviceListsBetween, queryKeys } from "../service/keys.ts";
import { parseSyncToken } from "../service/sync/token.ts";
import { sameJson } from "../store/keys-rows.ts";
import type { KeyClaim, OneTimeKey } from "../store/keys-types.ts";
import { parseBody } from "../validate.ts";

const MAX_KEYS = 1000;
const id = z.string().min(1).max(255);
const keyId = z
  .string()
  .max(255)
  .regex(/^[^:]+:.+$/, "must be <algorithm>:<key id>");
const keyValue = z.union([z.string().max(4096), z.looseObject({ key: z.string().max(4096) })]);
const keyMap = z
  .record(keyId, keyValue)
  .refine((m) => Object.keys(m).length <= MAX_KEYS, `at most ${MAX_KEYS} keys per upload`);
const signatures = z.record(z.string().max(255), z.record(z.string().max(255), z.string().max(1024)));

const deviceKeys = z.looseObject({
  user_id: z.string(),
  device_id: z.string(),
  algorithms: z.array(z.string().max(255)).max(100),
  keys: z.record(keyId, z.string().max(4096)),
  signatures,
});

const uploadBody = z.object({
  device_keys: deviceKeys.optional(),
  one_time_keys: keyMap.optional(),
  fallback_keys: keyMap.optional(),
});

const queryBody = z.object({
  device_keys: z.record(id, z.array(id).max(MAX_KEYS)),
  timeout: z.number().int().nonnegative().optional(),
});

const claimBody = z.object({
  one_time_keys: z.record(id, z.record(id, z.string().min(1).max(255))),
  timeout: z.number().int().nonnegative().optional(),
});

const toKeys = (m: Record<string, unknown> | undefined): OneTimeKey[] =>
  Object.entries(m ?? {}).map(([k, key]) => ({ keyId: k, algorithm: k.slice(0, k.indexOf(":")), key }));

/** One-time key counts as the spec's clients expect them: signed_curve25519 is always present. */
export async function otkCounts(hs: Homeserver, userId: string, deviceId: string): Promise<Record<string, number>> {
  return { signed_curve25519: 0, ...(await hs.store.keys.countOneTimeKeys(userId, deviceId)) };
}

/** The device's own keys: for the requester's device only, with a valid self-signature. */
function checkDeviceKeys(dk: z.infer<typeof deviceKeys>, userId: string, deviceId: string): void {
  if (dk.user_id !== userId || dk.device_id !== deviceId)
    throw new AmiError("M_INVALID_PARAM", "'device_keys' must be for the requesting user and device");
  const ed = dk.keys[`ed25519:${deviceId}`];
  if (typeof ed !== "string") throw new AmiError("M_INVALID_PARAM", `'device_keys.keys' needs ed25519:${deviceId}`);
  if (!verifyJsonSignature(dk, userId, `ed25519:${deviceId}`, ed))
    throw new AmiError("M_INVALID_SIGNATURE", "'device_keys' is not signed by its own ed25519 key", {}, 400);
}

export const routes: Route[] = [
  /** POST /_matrix/client/v3/keys/upload */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/keys/upload"],
    auth: "required",
    rateLimit: true,
    async handler(req) {
      const { hs } = req;
      const { userId, deviceId } = req.requester!;
      const b = parseBody(uploadBody, req.body);
      if (b.device_keys) {
        checkDeviceKeys(b.device_keys, userId, deviceId);
        const { unsigned: _u, ...keys } = b.device_keys;
        const old = (await hs.store.keys.getDeviceKeys([userId])).find((d) => d.deviceId === deviceId);
        if (!old || !sameJson(old.keys, keys)) {
          await hs.store.keys.setDeviceKeys(userId, deviceId, keys);
          await devicesChanged(hs, userId, [deviceId]);
        }
      }
      if (b.one_time_keys) await hs.store.keys.addOneTimeKeys(userId, deviceId, toKeys(b.one_time_keys));
      if (b.fallback_keys) {
        const fb = toKeys(b.fallback_keys);
        if (new Set(fb.map((k) => k.algorithm)).size !== fb.length)
          throw new AmiError("M_INVALID_PARAM", "'fallback_keys': one key per algorithm");
        await hs.store.keys.setFallbackKeys(userId, deviceId, fb);
      }
      return json({ one_time_key_counts: await otkCounts(hs, userId, deviceId) });
    },
  },
  /** POST /_matrix/client/v3/keys/query */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/keys/query"],
    auth: "required",
    rateLimit: true,
    async handler(req) {
      const b = parseBody(queryBody, req.body);
      if (Object.keys(b.device_keys).length > MAX_KEYS) throw new AmiError("M_INVALID_PARAM", "too many users");
      const { hs } = req;
      // Users of other servers: asked of their servers in parallel (isolated mode: simply absent, as before).
      const [local, remote] = await Promise.all([
        queryKeys(hs, req.requester!.userId, b.device_keys),
        hs.config.federation.enabled ? queryRemoteKeys(hs, b.device_keys, b.timeout) : null,
      ]);
      if (remote) {
        Object.assign(local.device_keys, remote.device_keys);
        Object.assign(local.master_keys, remote.master_keys);
        Object.assign(local.self_signing_keys, remote.self_signing_keys);
        Object.assign(local.failures, remote.failures);
        // The requester's own signatures of remote users' master keys (made with their user-signing key, stored
        // here, never sent to the user's server), visible to the requester only.
        const remoteUsers = Object.keys(remote.master_keys);
        const sigs = remoteUsers.length ? await hs.store.keys.getKeySignatures(remoteUsers) : [];
        for (const s of sigs) {
          const key = local.master_keys[s.targetUserId];
          if (s.signerUserId !== req.requester!.userId || crossSigningPublicKey(key) !== s.targetKeyId) continue;
          const signatures = { ...(key.signatures as Record<string, Record<string, string>> | undefined) };
          signatures[s.signerUserId] = { ...signatures[s.signerUserId], [s.signerKeyId]: s.signature };
          local.master_keys[s.targetUserId] = { ...key, signatures };
        }
      }
      return json(local);
    },
  },
  /** POST /_matrix/client/v3/keys/claim */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/keys/claim"],
    auth: "required",
    rateLimit: true,
    async handler(req) {
      const { hs } = req;
      const b = parseBody(claimBody, req.body);
      const claims: KeyClaim[] = [];
      for (const [userId, devices] of Object.entries(b.one_time_keys)) {
        // Other servers' users are claimed over federation below; unknown local users and devices get no key.
        if (serverNameOf(userId) !== hs.serverName) continue;
        for (const [deviceId, algorithm] of Object.entries(devices)) claims.push({ userId, deviceId, algorithm });
      }
      if (claims.length > MAX_KEYS) throw new AmiError("M_INVALID_PARAM", `at most ${MAX_KEYS} claims`);
      const remote = hs.config.federation.enabled ? claimRemoteKeys(hs, b.one_time_keys, b.timeout) : null;
      const one_time_keys: Record<string, Record<string, Record<string, unknown>>> = {};
      for (const k of await hs.store.keys.claimKeys(claims)) {
        one_time_keys[k.userId] ??= {};
        one_time_keys[k.userId][k.deviceId] = { [k.keyId]: k.key };
      }
      const r = await remote;
      if (r) Object.assign(one_time_keys, r.one_time_keys);
      return json({ failures: r?.failures ?? {}, one_time_keys });
    },
  },
  /** GET /_matrix/client/v3/keys/changes */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/keys/changes"],
    auth: "required",
    async handler(req) {
      const from = req.query.get("from");
      const to = req.query.get("to");
      if (!from || !to) throw new AmiError("M_MISSING_PARAM", "'from' and 'to' are required");
      const since = parseSyncToken(from).stream;
      const upto = Math.min(parseSyncToken(to).stream, req.hs.stream.current);
      if (upto <= since) return json({ changed: [], left: [] });
      return json(await deviceListsBetween(req.hs, req.requester!.userId, since, upto));
    },
  },
];
