/**
 * Restricted joins (client-server spec "Restricted rooms"; rooms/v8+ authorization rules): in a room whose
 * join rule is `restricted` or `knock_restricted`, a user who is neither joined nor invited may join only if
 * they are joined to one of the rooms the join rule's `allow` list names. The resident server then vouches
 * for the join by naming, in `join_authorised_via_users_server`, one of its own joined users who may invite;
 * the auth rules check that user. The field is the server's statement, so a client never gets to supply it.
 */
import { AmiError } from "../../core/errors.ts";
import { type AuthEvent, type StateKey, stateKey } from "../events/auth.ts";
import { serverNameOf } from "../events/ids.ts";
import { namedLevel, powerLevelOf } from "../events/power-levels.ts";
import type { EventContent } from "../events/types.ts";
import type { Homeserver } from "../hs.ts";

export const VIA_KEY = "join_authorised_via_users_server";

const RESTRICTED_RULES = new Set(["restricted", "knock_restricted"]);

/** The rooms an `allow` list accepts membership of (entries of other types are ignored, per the spec). */
export function allowedRooms(joinRules: { allow?: unknown } | undefined): string[] {
  const allow = joinRules?.allow;
  if (!Array.isArray(allow)) return [];
  const out: string[] = [];
  for (const a of allow)
    if (a && typeof a === "object" && a.type === "m.room_membership" && typeof a.room_id === "string")
      out.push(a.room_id);
  return out;
}

/**
 * The content of a member event sent through this server: a supplied `join_authorised_via_users_server` is
 * dropped (clients copy it from the previous event on profile updates, so dropping beats refusing), and for a
 * user's own restricted join the server's own choice is filled in. M_FORBIDDEN when the user satisfies no allow
 * condition, or no local member could authorise the join.
 */
export async function localMemberContent(
  hs: Homeserver,
  auth: Map<StateKey, AuthEvent>,
  sender: string,
  target: string,
  content: EventContent,
): Promise<EventContent> {
  let out = content;
  if (VIA_KEY in out) {
    out = { ...out };
    delete out[VIA_KEY];
  }
  if (out.membership !== "join" || sender !== target) return out;
  const userId = target;
  const joinRules = auth.get(stateKey("m.room.join_rules", ""))?.content;
  if (!RESTRICTED_RULES.has(String(joinRules?.join_rule))) return out;
  const current = auth.get(stateKey("m.room.member", userId))?.content.membership;
  // Joined (a profile update) or invited: the auth rules allow it without anyone vouching.
  if (current === "join" || current === "invite") return out;
  if (current === "ban") return out; // the auth rules refuse it with the reason
  let allowed = false;
  for (const roomId of allowedRooms(joinRules)) {
    if ((await hs.store.events.getMembership(roomId, userId))?.membership === "join") {
      allowed = true;
      break;
    }
  }
  if (!allowed) throw new AmiError("M_FORBIDDEN", "You are not a member of any room this room allows joins from");
  const via = authorisingUser(hs.serverName, auth);
  if (!via) throw new AmiError("M_FORBIDDEN", "No user on this server can authorise joins to this room");
  return { ...out, [VIA_KEY]: via };
}

/** A joined user of this server with the invite level, the highest-powered first (least likely to be demoted). */
export function authorisingUser(serverName: string, auth: Map<StateKey, AuthEvent>): string | null {
  const pl = auth.get(stateKey("m.room.power_levels", ""))?.content;
  const create = auth.get(stateKey("m.room.create", ""));
  const need = namedLevel("invite", pl);
  let best: { userId: string; level: number } | null = null;
  for (const e of auth.values()) {
    if (e.type !== "m.room.member" || e.content.membership !== "join" || typeof e.state_key !== "string") continue;
    if (serverNameOf(e.state_key) !== serverName) continue;
    const level = powerLevelOf(e.state_key, pl, create);
    if (level < need) continue;
    if (!best || level > best.level || (level === best.level && e.state_key < best.userId))
      best = { userId: e.state_key, level };
  }
  return best?.userId ?? null;
}
