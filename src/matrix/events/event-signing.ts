/**
 * Signing whole events (server-server spec "Signing events"): the content hash goes into `hashes`,
 * then the signature is computed over the *redacted* event, so a redaction keeps it valid.
 */
import { contentHash } from "./hashing.ts";
import { redactEvent } from "./redaction.ts";
import { type SigningKey, signJson, verifyJsonSignature } from "./signing.ts";
import type { JsonObject, Signatures } from "./types.ts";

/** Returns a copy of `pdu` with `hashes.sha256` set and this server's signature added. */
export function signEvent<T extends object>(
  pdu: T,
  serverName: string,
  key: SigningKey,
  roomVersion: string,
): T & { hashes: { sha256: string }; signatures: Signatures } {
  const hashes = (pdu as { hashes?: JsonObject }).hashes;
  const hashed: JsonObject = { ...pdu, hashes: { ...(hashes ?? {}), sha256: contentHash(pdu) } };
  const signed = signJson(redactEvent(hashed, roomVersion), serverName, key);
  return { ...hashed, signatures: signed.signatures } as unknown as T & {
    hashes: { sha256: string };
    signatures: Signatures;
  };
}

/** Checks one server's signature on an event (over its redacted form). */
export function verifyEventSignature(
  pdu: object,
  serverName: string,
  keyId: string,
  publicKeyBase64: string,
  roomVersion: string,
): boolean {
  return verifyJsonSignature(redactEvent(pdu, roomVersion), serverName, keyId, publicKeyBase64);
}
