/**
 * Account moderation (spec "Account locking", "Account suspension", admin API v1.18): the checks shared by the edge
 * and the few handlers that decide per request. Locking is enforced at the edge (`http/server.ts`, routes opt out
 * with `allowLocked`); suspension refuses the routes flagged `refuseSuspended` there, and a redaction of someone
 * else's event here. A suspended user still reads, syncs, leaves rooms, redacts their own events, manages devices,
 * keys and key backup, and logs out — the spec's list of what a suspended account SHOULD still be able to do.
 */
import { AmiError } from "../../core/errors.ts";
import type { Requester } from "./requester.ts";

export function assertNotSuspended(r: Requester | null): void {
  if (r?.suspended) throw new AmiError("M_USER_SUSPENDED", "This account is suspended and may not do this");
}
