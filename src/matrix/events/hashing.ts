/**
 * Event hashes (server-server spec "Calculating the content hash", "Calculating the reference
 * hash") and event IDs (rooms/v4 "Event IDs": `$` + URL-safe unpadded base64 of the reference hash).
 */
import { createHash } from "node:crypto";
import { unpaddedBase64, unpaddedBase64Url } from "./base64.ts";
import { canonicalJsonBytes } from "./canonical-json.ts";
import { redactEvent } from "./redaction.ts";

function sha256(data: Uint8Array): Buffer {
  return createHash("sha256").update(data).digest();
}

/** Unpadded base64 sha256 of the canonical event without `unsigned`, `signatures` and `hashes`. */
export function contentHash(pdu: object): string {
  const { unsigned: _u, signatures: _s, hashes: _h, ...rest } = pdu as Record<string, unknown>;
  return unpaddedBase64(sha256(canonicalJsonBytes(rest)));
}

/**
 * sha256 of the canonical redacted event without `signatures` and `unsigned`. Since room version 4
 * a PDU carries no `event_id` (it is derived from this hash), so one attached by our own store is
 * dropped rather than hashed.
 */
export function referenceHash(pdu: object, roomVersion: string): Buffer {
  const { event_id: _e, ...withoutId } = pdu as Record<string, unknown>;
  const { signatures: _s, unsigned: _u, ...rest } = redactEvent(withoutId, roomVersion);
  return sha256(canonicalJsonBytes(rest));
}

export function eventIdFor(pdu: object, roomVersion: string): string {
  return "$" + unpaddedBase64Url(referenceHash(pdu, roomVersion));
}

/** True when `hashes.sha256` matches the event's content (a mismatch means: serve it redacted). */
export function checkContentHash(pdu: object): boolean {
  const claimed = (pdu as { hashes?: { sha256?: unknown } }).hashes?.sha256;
  return typeof claimed === "string" && claimed.replace(/=+$/, "") === contentHash(pdu);
}
