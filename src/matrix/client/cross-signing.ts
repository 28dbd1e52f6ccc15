/** Spec section "Cross-signing" (cross_signing.yaml): device_signing/upload and signatures/upload. */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { serverNameOf } from "../events/ids.ts";
import { verifyJsonSignature } from "../events/signing.ts";
import type { JsonObject, Signatures } from "../events/types.ts";
import { crossSigningChanged, devicesChanged, remoteCrossSigningKeys } from "../federation/device-lists.ts";
import type { Homeserver } from "../hs.ts";
import { json, type Route } from "../http/types.ts";
import { crossSigningKeysOf, crossSigningPublicKey, deviceListsChanged, signedBy } from "../service/keys.ts";
import { checkUia, finishUia } from "../service/uia.ts";
import { sameJson } from "../store/keys-rows.ts";
import type { CrossSigningKeyType, KeySignatureRow } from "../store/keys-types.ts";
import { parseBody } from "../validate.ts";

const FLOWS = [["m.login.password"]];
const sigMap = z.record(z.string().max(255), z.record(z.string().max(255), z.string().max(1024)));
const crossKey = z.looseObject({
  user_id: z.string(),
  usage: z.array(z.string().max(64)).min(1).max(8),
  keys: z.record(z.string().max(255), z.string().max(255)),
  signatures: sigMap.optional(),
});
const uploadBody = z.object({
  master_key: crossKey.optional(),
  self_signing_key: crossKey.optional(),
  user_signing_key: crossKey.optional(),
  auth: z.unknown().optional(),
});
const signaturesBody = z.record(
  z.string().max(255),
  z.record(z.string().max(255), z.looseObject({ signatures: sigMap })),
);

const stripped = (o: JsonObject) => {
  const { signatures: _s, unsigned: _u, ...rest } = o;
  return rest;
};

function checkCrossKey(
  key: z.infer<typeof crossKey>,
  type: CrossSigningKeyType,
  userId: string,
  master: JsonObject | undefined,
): void {
  const name = `${type}_key`;
  if (key.user_id !== userId) throw new AmiError("M_INVALID_PARAM", `'${name}.user_id' must be the requesting user`);
  if (!key.usage.includes(type)) throw new AmiError("M_INVALID_PARAM", `'${name}.usage' must include ${type}`);
  const pub = crossSigningPublicKey(key);
  if (!pub || key.keys[`ed25519:${pub}`] !== pub)
    throw new AmiError("M_INVALID_PARAM", `'${name}.keys' must be one ed25519:<public key> entry`);
  if (type === "master") return;
  const masterPub = crossSigningPublicKey(master);
  if (!masterPub) throw new AmiError("M_INVALID_PARAM", `'${name}' needs a master key`);
  if (!signedBy(key, userId, masterPub))
    throw new AmiError("M_INVALID_SIGNATURE", `'${name}' is not signed by the master key`, {}, 400);
}

/** A key object as uploaded: signatures checked by the upload schema (sigMap). */
type SignedJson = JsonObject & { signatures?: Signatures };

/** A failure entry of signatures/upload. */
const failure = (error: string) => ({ errcode: "M_INVALID_SIGNATURE", error });

/**
 * Signatures by `signer` of the object `obj` (target `targetUser`/`targetKeyId`, whose stored form is
 * `stored`) that verify against one of the signer's keys.
 */
async function verifiedSignatures(
  hs: Homeserver,
  signer: string,
  targetUser: string,
  targetKeyId: string,
  obj: SignedJson,
  stored: SignedJson | undefined,
): Promise<KeySignatureRow[] | string> {
  if (!stored) return "Unknown key";
  if (!sameJson(stripped(stored), stripped(obj))) return "The signed object does not match the stored key";
  const mine = await crossSigningKeysOf(hs, signer);
  const signerKeys = new Map<string, string>();
  for (const k of Object.values(mine)) {
    const p = crossSigningPublicKey(k);
    if (p) signerKeys.set(`ed25519:${p}`, p);
  }
  for (const d of await hs.store.keys.getDeviceKeys([signer])) {
    const ed = d.keys.keys?.[`ed25519:${d.deviceId}`];
    if (typeof ed === "string") signerKeys.set(`ed25519:${d.deviceId}`, ed);
  }
  const out: KeySignatureRow[] = [];
  for (const [signerKeyId, signature] of Object.entries(obj.signatures?.[signer] ?? {})) {
    if (stored.signatures?.[signer]?.[signerKeyId] === signature) continue;
    const pub = signerKeys.get(signerKeyId);
    if (!pub || !verifyJsonSignature(obj, signer, signerKeyId, pub)) return `Invalid signature ${signerKeyId}`;
    out.push({
      targetUserId: targetUser,
      targetKeyId,
      signerUserId: signer,
      signerKeyId,
      signature: String(signature),
    });
  }
  return out;
}

export const routes: Route[] = [
  /** POST /_matrix/client/v3/keys/device_signing/upload */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/keys/device_signing/upload", "/_matrix/client/unstable/keys/device_signing/upload"],
    auth: "required",
    async handler(req) {
      const { hs } = req;
      const { userId } = req.requester!;
      const b = parseBody(uploadBody, req.body);
      const existing = await crossSigningKeysOf(hs, userId);
      const given: Partial<Record<CrossSigningKeyType, JsonObject>> = {};
      if (b.master_key) given.master = b.master_key;
      if (b.self_signing_key) given.self_signing = b.self_signing_key;
      if (b.user_signing_key) given.user_signing = b.user_signing_key;
      // Spec (v1.11): no UIA for a first upload, nor for re-uploading exactly the keys already stored.
      const nothingNew = Object.entries(given).every(([t, k]) => sameJson(existing[t as CrossSigningKeyType], k));
      let session: Parameters<typeof finishUia>[1] | null = null;
      if (existing.master && !nothingNew) {
        const uia = await checkUia(req, FLOWS, `device_signing:${userId}`, userId);
        if (!uia.done) return uia.reply;
        session = uia.session;
      }
      const master = given.master ?? existing.master;
      for (const [t, k] of Object.entries(given))
        checkCrossKey(k as z.infer<typeof crossKey>, t as CrossSigningKeyType, userId, master);
      if (!nothingNew) {
        await hs.store.keys.setCrossSigningKeys(userId, given);
        // Master / self-signing keys go to the servers sharing a room (the user-signing key is the user's own).
        await crossSigningChanged(hs, userId);
      }
      if (session) finishUia(hs, session);
      return json({});
    },
  },
  /** POST /_matrix/client/v3/keys/signatures/upload */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/keys/signatures/upload", "/_matrix/client/unstable/keys/signatures/upload"],
    auth: "required",
    async handler(req) {
      const { hs } = req;
      const signer = req.requester!.userId;
      const b = parseBody(signaturesBody, req.body);
      const failures: Record<string, Record<string, unknown>> = {};
      const rows: KeySignatureRow[] = [];
      const changed = new Set<string>();
      // The signer's own devices and cross-signing keys that gained a signature: other servers hear of them too.
      const signedDevices: string[] = [];
      let signedCross = false;
      for (const [target, objs] of Object.entries(b)) {
        // Another server's user: their keys as we hold them (our users may sign their master key).
        const cross =
          serverNameOf(target) === hs.serverName
            ? await crossSigningKeysOf(hs, target)
            : await remoteCrossSigningKeys(hs, target).catch(() => ({}) as Record<string, undefined>);
        const devices = new Map(
          (await hs.store.keys.getDeviceKeys([target])).map((d) => [d.deviceId, d.keys] as const),
        );
        for (const [keyId, obj] of Object.entries(objs)) {
          const masterPub = crossSigningPublicKey(cross.master);
          const stored =
            keyId === masterPub
              ? cross.master
              : target === signer
                ? (devices.get(keyId) ?? Object.values(cross).find((k) => crossSigningPublicKey(k) === keyId))
                : undefined;
          const r = await verifiedSignatures(hs, signer, target, keyId, obj, stored);
          if (typeof r === "string") {
            failures[target] ??= {};
            failures[target][keyId] = failure(r);
            continue;
          }
          rows.push(...r);
          // Whoever shares a room with the target (the signer included) re-fetches the target's keys.
          if (r.length) changed.add(target);
          if (r.length && target === signer && devices.has(keyId)) signedDevices.push(keyId);
          else if (r.length && target === signer) signedCross = true;
        }
      }
      if (rows.length) {
        await hs.store.keys.addKeySignatures(rows);
        changed.delete(signer);
        if (changed.size) await deviceListsChanged(hs, [...changed]);
        if (signedDevices.length) await devicesChanged(hs, signer, signedDevices);
        if (signedCross) await crossSigningChanged(hs, signer);
      }
      return json({ failures });
    },
  },
];
