/** Rule 4.4.1 of the v10/v11 authorization rules: an invite that redeems a third-party invite. */
import { decodeBase64, unpaddedBase64 } from "./base64.ts";
import { verifyJsonSignature } from "./signing.ts";
import { type EventContent, field, type JsonObject } from "./types.ts";

export interface ThirdPartyInviteEvent {
  sender: string;
  content: EventContent;
}

/** The public keys of an m.room.third_party_invite: `public_key` and every `public_keys[].public_key`. */
function publicKeysOf(tpi: ThirdPartyInviteEvent): string[] {
  const keys: string[] = [];
  if (typeof tpi.content.public_key === "string") keys.push(tpi.content.public_key);
  if (Array.isArray(tpi.content.public_keys)) {
    for (const k of tpi.content.public_keys as unknown[]) {
      const pk = field(k, "public_key");
      if (typeof pk === "string") keys.push(pk);
    }
  }
  // Keys may be published URL-safe or padded; verification wants the standard form.
  return keys.flatMap((k) => {
    try {
      return [unpaddedBase64(decodeBase64(k))];
    } catch {
      return [];
    }
  });
}

export function checkThirdPartyInvite(
  event: { sender: string; state_key?: string; content: EventContent },
  tpi: ThirdPartyInviteEvent | undefined,
): string | null {
  const given = field(event.content, "third_party_invite", "signed");
  if (!given || typeof given !== "object") return "third_party_invite has no 'signed'";
  const signed = given as JsonObject;
  if (typeof signed.mxid !== "string" || typeof signed.token !== "string") return "'signed' needs mxid and token";
  if (signed.mxid !== event.state_key) return "third-party invite is for another user";
  if (!tpi) return "no matching m.room.third_party_invite";
  if (tpi.sender !== event.sender) return "only the sender of the third-party invite may redeem it";
  const signatures = signed.signatures;
  if (signatures && typeof signatures === "object") {
    const keys = publicKeysOf(tpi);
    for (const [server, byKey] of Object.entries(signatures)) {
      if (!byKey || typeof byKey !== "object") continue;
      for (const keyId of Object.keys(byKey)) {
        if (keys.some((pk) => verifyJsonSignature(signed, server, keyId, pk))) return null;
      }
    }
  }
  return "third-party invite signature does not verify";
}
