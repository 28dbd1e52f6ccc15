/**
 * Ed25519 signing of JSON (spec appendix "Signing JSON") and the server signing key, stored in
 * Synapse's `signing.key` format so keys move between the two servers.
 */
import { createPrivateKey, createPublicKey, type KeyObject, randomBytes, sign, verify } from "node:crypto";
import { AmiError } from "../../core/errors.ts";
import { decodeBase64, unpaddedBase64 } from "./base64.ts";
import { canonicalJsonBytes } from "./canonical-json.ts";
import { randomString } from "./ids.ts";
import type { Signatures } from "./types.ts";

export interface SigningKey {
  /** e.g. "ed25519:a_AbCd" */
  keyId: string;
  /** The 32-byte Ed25519 seed (the private key). */
  seed: Buffer;
  publicKeyBase64: string;
  sign(data: Uint8Array): Buffer;
}

// DER prefixes that wrap a raw 32-byte Ed25519 key as PKCS#8 / SPKI, which is what node:crypto imports.
const PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

function privateKeyFromSeed(seed: Buffer): KeyObject {
  if (seed.length !== 32) throw new AmiError("AMI_INVALID_INPUT", `Ed25519 seed must be 32 bytes, got ${seed.length}`);
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: "der", type: "pkcs8" });
}

/** Imported public keys by their base64: importing one costs about as much as a verification with it. */
const publicKeys = new Map<string, KeyObject>();
const MAX_PUBLIC_KEYS = 1024;

function publicKeyFromRaw(raw: Buffer): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: "der", type: "spki" });
}

function cachedPublicKey(base64: string, raw: Buffer): KeyObject {
  let k = publicKeys.get(base64);
  if (!k) {
    if (publicKeys.size >= MAX_PUBLIC_KEYS) publicKeys.clear();
    k = publicKeyFromRaw(raw);
    publicKeys.set(base64, k);
  }
  return k;
}

/** Builds a signing key from its seed; `keyId` is "ed25519:<version>". */
export function signingKeyFromSeed(keyId: string, seed: Buffer): SigningKey {
  if (!/^ed25519:[a-zA-Z0-9_]+$/.test(keyId)) throw new AmiError("AMI_INVALID_INPUT", `Bad signing key id '${keyId}'`);
  const priv = privateKeyFromSeed(seed);
  const pubDer = createPublicKey(priv).export({ format: "der", type: "spki" });
  const publicKeyBase64 = unpaddedBase64(pubDer.subarray(pubDer.length - 32));
  return {
    keyId,
    seed: Buffer.from(seed),
    publicKeyBase64,
    sign: (data) => sign(null, data, priv),
  };
}

/** A fresh key with a Synapse-style version ("a_" + 4 letters). */
export function generateSigningKey(): SigningKey {
  return signingKeyFromSeed(`ed25519:a_${randomString(4)}`, randomBytes(32));
}

/** Reads Synapse's `signing.key`: lines of "ed25519 <version> <unpadded base64 seed>"; the first is used. */
export function parseSigningKeyFile(text: string): SigningKey {
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const parts = line.split(/\s+/);
    if (parts.length !== 3 || parts[0] !== "ed25519") {
      throw new AmiError("AMI_INVALID_INPUT", "signing key file: expected 'ed25519 <version> <base64 seed>'");
    }
    return signingKeyFromSeed(`ed25519:${parts[1]}`, decodeBase64(parts[2]));
  }
  throw new AmiError("AMI_INVALID_INPUT", "signing key file is empty");
}

export function formatSigningKeyFile(k: SigningKey): string {
  const [alg, version] = k.keyId.split(":");
  return `${alg} ${version} ${unpaddedBase64(k.seed)}\n`;
}

/** The bytes a signature covers: canonical JSON without `signatures` and `unsigned`. */
function signedBytes(obj: object): Buffer {
  const { signatures: _s, unsigned: _u, ...rest } = obj as Record<string, unknown>;
  return canonicalJsonBytes(rest);
}

/** Returns a copy of `obj` with `signatures[serverName][keyId]` added; other signatures are kept. */
export function signJson<T extends object>(
  obj: T,
  serverName: string,
  key: SigningKey,
): T & { signatures: Signatures } {
  const signature = unpaddedBase64(key.sign(signedBytes(obj)));
  const existing: Signatures = (obj as { signatures?: Signatures }).signatures ?? {};
  const signatures = { ...existing, [serverName]: { ...(existing[serverName] ?? {}), [key.keyId]: signature } };
  return { ...obj, signatures };
}

/** Spec "Checking for a Signature": false (never a throw) for a missing, malformed or wrong signature. */
export function verifyJsonSignature(obj: object, serverName: string, keyId: string, publicKeyBase64: string): boolean {
  if (!keyId.startsWith("ed25519:")) return false;
  const sig = (obj as { signatures?: Partial<Signatures> }).signatures?.[serverName]?.[keyId];
  if (typeof sig !== "string") return false;
  try {
    const raw = decodeBase64(publicKeyBase64);
    const sigBytes = decodeBase64(sig);
    if (raw.length !== 32 || sigBytes.length !== 64) return false;
    return verify(null, signedBytes(obj), cachedPublicKey(publicKeyBase64, raw), sigBytes);
  } catch {
    return false;
  }
}

/** The key ids `serverName` signed `obj` with. */
export function signatureKeyIds(obj: object, serverName: string): string[] {
  const entry = (obj as { signatures?: Partial<Signatures> }).signatures?.[serverName];
  return entry && typeof entry === "object" ? Object.keys(entry) : [];
}
