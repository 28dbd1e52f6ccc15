/**
 * Shadow bans (Synapse's admin API): a shadow-banned user's messages, state events, redactions and invites (and
 * rooms created with invites) are answered as if they worked — an ID that names nothing — and never stored nor
 * delivered. Joins, leaves,
 * reads and everything else work as usual, so the user does not notice at once.
 */
import { randomString } from "../events/ids.ts";
import type { Requester } from "./requester.ts";

/** The invented event ID a shadow-banned send is answered with (Synapse's shape: `$` and 43 random characters). */
export function shadowEventId(r: Requester | null | undefined): string | null {
  return r?.shadowBanned ? `$${randomString(43)}` : null;
}
