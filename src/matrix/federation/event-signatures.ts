/**
 * Checking a PDU's signatures and content hash (spec server-server "Checks performed on receipt of a PDU", steps
 * "passes signature checks" and "passes hash checks"): every server that must have signed (the sender's; for a
 * restricted join, the `join_authorised_via_users_server` user's) has a signature by one of its keys that was
 * valid when the event was made (`origin_server_ts`: old_verify_keys honoured before their expired_ts), computed over
 * the redacted event. A bad signature rejects the event; a content hash mismatch keeps it, redacted.
 */
import { verifyEventSignature } from "../events/event-signing.ts";
import { checkContentHash } from "../events/hashing.ts";
import { parseUserId } from "../events/ids.ts";
import { redactEvent } from "../events/redaction.ts";
import { signatureKeyIds } from "../events/signing.ts";
import type { KeyFetcher } from "./key-fetcher.ts";

export type PduCheck = { ok: true; pdu: object; redacted: boolean } | { ok: false; reason: string };

/** The servers whose signatures a PDU needs (room versions 3+: the sender's server, plus the authorising server). */
export function requiredSigners(pdu: Record<string, unknown>): string[] {
  const servers = new Set<string>();
  const sender = typeof pdu.sender === "string" ? parseUserId(pdu.sender) : null;
  if (sender) servers.add(sender.server);
  const content = pdu.content as Record<string, unknown> | undefined;
  const via = content?.join_authorised_via_users_server;
  if (pdu.type === "m.room.member" && content?.membership === "join" && typeof via === "string") {
    const v = parseUserId(via);
    if (v) servers.add(v.server);
  }
  return [...servers];
}

export async function checkPduSignatures(pdu: object, roomVersion: string, keys: KeyFetcher): Promise<PduCheck> {
  const p = pdu as Record<string, unknown>;
  if (typeof p.sender !== "string" || !parseUserId(p.sender)) return { ok: false, reason: "no valid sender" };
  const ts = p.origin_server_ts;
  if (!Number.isSafeInteger(ts)) return { ok: false, reason: "no origin_server_ts" };
  for (const server of requiredSigners(p)) {
    let verified = false;
    for (const keyId of signatureKeyIds(pdu, server)) {
      if (!keyId.startsWith("ed25519:")) continue;
      const key = await keys.verifyKey(server, keyId, ts as number);
      if (key && verifyEventSignature(pdu, server, keyId, key.publicKey, roomVersion)) {
        verified = true;
        break;
      }
    }
    if (!verified) return { ok: false, reason: `no valid signature of ${server}` };
  }
  if (!checkContentHash(pdu)) return { ok: true, pdu: redactEvent(pdu, roomVersion), redacted: true };
  return { ok: true, pdu, redacted: false };
}
