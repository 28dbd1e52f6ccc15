/**
 * Signing whole events (server-server spec "Signing events"): the content hash goes into `hashes`,
 * then the signature is computed over the *redacted* event, so a redaction keeps it valid.
 */
import { contentHash } from "./hashing.ts";
import { redactEvent } from "./redaction.ts";
import { type Signatures, type SigningKey, signJson, verifyJsonSignature } from "./signing.ts";

/** Returns a copy of `pdu` with `hashes.sha256` set and this server's signature added. */
export function signEvent<T extends Record<string, any>>(
  pdu: T,
  serverName: string,
  key: SigningKey,
  roomVersion: string,
): T & { hashes: Record<string, string>; signatures: Signatures } {
  const hashed: Record<string, any> = { ...pdu, hashes: { ...(pdu.hashes ?? {}), sha256: contentHash(pdu) } };
  const signed = signJson(redactEvent(hashed, roomVersion), serverName, key);
  return { ...hashed, signatures: signed.signatures } as unknown as T & {
    hashes: Record<string, string>;
    signatures: Signatures;
  };
}

/** Checks one server's signature on an event (over its redacted form). */
export function verifyEventSignature(
  pdu: Record<string, any>,
  serverName: string,
  keyId: string,
  publicKeyBase64: string,
  roomVersion: string,
): boolean {
  return verifyJsonSignature(redactEvent(pdu, roomVersion), serverName, keyId, publicKeyBase64);
}
