/**
 * Event authorization (spec rooms/v10, rooms/v11 and rooms/v12 "Authorization rules") and the auth events
 * selection (server-server spec "Auth events selection"). Pure: the caller supplies the auth state, which holds
 * the room's create event in every version (in v12 it is implied by the room ID, not cited in `auth_events`:
 * callers add it, see `createEventIdOfRoom`). Rule numbers in comments refer to the v10/v11 list; v12 inserts
 * its rule 2 (the room ID names the create event) and 10.4 (creators are not in `users`).
 */
import { checkThirdPartyInvite, type ThirdPartyInviteEvent } from "./auth-third-party.ts";
import { parseUserId, roomIdOfCreateEvent, serverNameOf } from "./ids.ts";
import {
  checkPowerLevelsChange,
  namedLevel,
  powerLevelOf,
  requiredLevelForEvent,
  roomCreatorOf,
  roomCreatorsOf,
  validatePowerLevelsContent,
} from "./power-levels.ts";
import { isSupportedRoomVersion, roomVersionRules } from "./room-versions.ts";
import { contentOf, type EventContent, field, type PowerLevelsContent } from "./types.ts";

export type StateKey = `${string}\u0000${string}`;
export const stateKey = (type: string, key: string): StateKey => `${type}\u0000${key}`;

export interface AuthEvent {
  event_id: string;
  type: string;
  state_key?: string;
  sender: string;
  content: EventContent;
  room_id: string;
}

/** The event being authorized; `prev_events` is used when known (create event, creator's first join). */
export type AuthCheckEvent = AuthEvent & { redacts?: string; prev_events?: readonly string[] };

export interface CheckAuthOptions {
  /**
   * Rule 4.2.1: is the event signed by `serverName`? Only needed for events from other servers;
   * when absent, `join_authorised_via_users_server` signatures are taken as already checked.
   */
  isSignedBy?: (serverName: string) => boolean;
}

/**
 * Which (type, state_key) auth events `event` needs: what its `auth_events` cite. Room version 12 never cites
 * the create event (the room ID implies it), so it is left out when `roomVersion` says so; the auth rules still
 * read it (`authStateTypesFor`).
 */
export function authTypesFor(
  event: {
    type: string;
    sender: string;
    state_key?: string;
    content: EventContent;
  },
  roomVersion?: string,
): Array<[string, string]> {
  const out = authStateTypesFor(event);
  return roomVersion !== undefined && roomVersionRules(roomVersion)?.roomIdIsCreateHash
    ? out.filter(([t]) => t !== "m.room.create")
    : out;
}

/** Which (type, state_key) state the auth rules read for `event`, the create event included in every version. */
export function authStateTypesFor(event: {
  type: string;
  sender: string;
  state_key?: string;
  content: EventContent;
}): Array<[string, string]> {
  if (event.type === "m.room.create" && event.state_key === "") return [];
  const out: Array<[string, string]> = [
    ["m.room.create", ""],
    ["m.room.power_levels", ""],
    ["m.room.member", event.sender],
  ];
  if (event.type === "m.room.member" && typeof event.state_key === "string") {
    if (event.state_key !== event.sender) out.push(["m.room.member", event.state_key]);
    const membership = event.content?.membership;
    if (membership === "join" || membership === "invite" || membership === "knock") {
      out.push(["m.room.join_rules", ""]);
    }
    const token = field(event.content, "third_party_invite", "signed", "token");
    if (membership === "invite" && typeof token === "string") out.push(["m.room.third_party_invite", token]);
    const via = event.content?.join_authorised_via_users_server;
    if (membership === "join" && typeof via === "string" && !out.some(([t, k]) => t === "m.room.member" && k === via)) {
      out.push(["m.room.member", via]);
    }
  }
  return out;
}

/** Returns null when `event` is allowed, else why not. */
export function checkAuth(
  event: AuthCheckEvent,
  authState: Map<StateKey, AuthEvent>,
  roomVersion: string,
  options: CheckAuthOptions = {},
): string | null {
  const rules = roomVersionRules(roomVersion);
  if (!rules) return `unsupported room version '${roomVersion}'`;
  if (typeof event.type !== "string" || typeof event.sender !== "string") return "event has no type or sender";
  if (!event.content || typeof event.content !== "object") return "event content must be an object";

  // Rule 1: the create event. The rule is on the type alone: any other m.room.create (no state key, another
  // state key) comes after the room's real create event, so it has prev_events and is rejected.
  if (event.type === "m.room.create") {
    if (event.state_key !== "") return "m.room.create must be a state event with an empty state_key";
    if (event.prev_events && event.prev_events.length > 0) return "create event must not have prev_events";
    if (rules.roomIdIsCreateHash) {
      // v12 rule 1.2: no room_id. Stored copies carry the room ID they imply (a create event cannot name its own
      // hash), so that one is the same as none.
      const rid = event.room_id as string | undefined;
      if (rid !== undefined && rid !== roomIdOfCreateEvent(event.event_id)) return "create event must have no room_id";
    } else if (serverNameOf(event.room_id) !== serverNameOf(event.sender)) {
      return "room ID domain does not match sender";
    }
    const v = event.content.room_version;
    if (v !== undefined && (typeof v !== "string" || !isSupportedRoomVersion(v))) {
      return `unrecognised room version '${String(v)}'`;
    }
    // v12 rule 1.4: additional_creators, user IDs as valid as a sender must be.
    const extra = event.content.additional_creators;
    if (rules.privilegedCreators && extra !== undefined) {
      if (!Array.isArray(extra) || !extra.every((u) => typeof u === "string" && parseUserId(u) !== null)) {
        return "additional_creators must be an array of user IDs";
      }
    }
    if (!rules.implicitCreator && typeof event.content.creator !== "string") return "create event has no creator";
    return null;
  }

  const get = (type: string, key: string): AuthEvent | undefined => authState.get(stateKey(type, key));
  // Rule 2.4, and auth events must belong to this room.
  const create = get("m.room.create", "");
  if (!create) return "no m.room.create event in auth events";
  // v12 rule 2: the room ID is the create event's ID (the caller supplies an accepted create event).
  if (rules.roomIdIsCreateHash && event.room_id !== roomIdOfCreateEvent(create.event_id)) {
    return "room ID is not the create event's ID";
  }
  for (const [type, key] of authStateTypesFor(event)) {
    if (rules.roomIdIsCreateHash && type === "m.room.create") continue; // rule 2 checked it
    const e = get(type, key);
    if (e && e.room_id !== event.room_id) return `auth event ${type}/${key} belongs to another room`;
  }
  // Rule 3.
  if (create.content["m.federate"] === false && serverNameOf(event.sender) !== serverNameOf(create.sender)) {
    return "room is not federated";
  }

  // Rule 9 checked it when it was accepted.
  const powerLevels = contentOf("m.room.power_levels", get("m.room.power_levels", ""));
  const level = (user: string) => powerLevelOf(user, powerLevels, create);
  const membershipOf = (user: string): string => {
    const m = get("m.room.member", user)?.content.membership;
    return typeof m === "string" ? m : "leave";
  };
  const senderLevel = level(event.sender);

  // Rule 4.
  if (event.type === "m.room.member") {
    return checkMembership(event, { get, create, powerLevels, level, membershipOf, senderLevel, options });
  }
  // Rule 5.
  if (membershipOf(event.sender) !== "join") return `${event.sender} is not joined to the room`;
  // Rule 6.
  if (event.type === "m.room.third_party_invite") {
    return senderLevel >= namedLevel("invite", powerLevels) ? null : "insufficient power level to invite";
  }
  // Rule 7.
  const isState = typeof event.state_key === "string";
  const required = requiredLevelForEvent(event.type, isState, powerLevels);
  if (required > senderLevel) return `sending ${event.type} needs power level ${required}, you have ${senderLevel}`;
  // Rule 8.
  if (isState && event.state_key!.startsWith("@") && event.state_key !== event.sender) {
    return "state_key starting with '@' must be the sender";
  }
  // Rule 9.
  if (event.type === "m.room.power_levels") {
    const bad = validatePowerLevelsContent(event.content);
    if (bad) return bad;
    // v12 rule 10.4: creators cannot be listed.
    if (rules.privilegedCreators && event.content.users && typeof event.content.users === "object") {
      for (const c of roomCreatorsOf(create)) {
        if (Object.hasOwn(event.content.users, c)) return `power levels cannot list room creator ${c} in 'users'`;
      }
    }
    if (!powerLevels) return null;
    return checkPowerLevelsChange(event.sender, senderLevel, powerLevels, event.content);
  }
  // Rule 10 (redactions are authorised later, when served: see mayRedact).
  return null;
}

interface MembershipCtx {
  get: (type: string, key: string) => AuthEvent | undefined;
  create: AuthEvent;
  powerLevels: PowerLevelsContent | undefined;
  level: (user: string) => number;
  membershipOf: (user: string) => string;
  senderLevel: number;
  options: CheckAuthOptions;
}

function checkMembership(event: AuthCheckEvent, c: MembershipCtx): string | null {
  const target = event.state_key;
  const membership = event.content.membership;
  // 4.1
  if (typeof target !== "string") return "member event has no state_key";
  if (typeof membership !== "string") return "member event has no membership";
  if (!parseUserId(target)) return `state_key '${target}' is not a user ID`;
  // 4.2
  const via = event.content.join_authorised_via_users_server;
  if (via !== undefined) {
    const viaServer = typeof via === "string" ? serverNameOf(via) : null;
    if (!viaServer) return "join_authorised_via_users_server is not a user ID";
    if (c.options.isSignedBy && !c.options.isSignedBy(viaServer)) {
      return `event is not signed by ${viaServer} (join_authorised_via_users_server)`;
    }
  }
  const senderMembership = c.membershipOf(event.sender);
  const targetMembership = c.membershipOf(target);
  const joinRule = String(c.get("m.room.join_rules", "")?.content.join_rule ?? "invite");

  switch (membership) {
    case "join": {
      // 4.3.1: the creator's own first join, right after the create event.
      if (target === roomCreatorOf(c.create) && isFirstEventAfterCreate(event, c)) {
        return null;
      }
      if (event.sender !== target) return "cannot join on behalf of another user";
      if (senderMembership === "ban") return `${target} is banned from the room`;
      if (joinRule === "invite" || joinRule === "knock") {
        return senderMembership === "invite" || senderMembership === "join" ? null : "room is invite only";
      }
      if (joinRule === "restricted" || joinRule === "knock_restricted") {
        if (senderMembership === "invite" || senderMembership === "join") return null;
        if (typeof via !== "string") return "room is restricted and no authorising user was given";
        // The authorising user must be in the room and allowed to invite.
        if (c.membershipOf(via) !== "join" || c.level(via) < namedLevel("invite", c.powerLevels)) {
          return `${via} cannot authorise joins`;
        }
        return null;
      }
      if (joinRule === "public") return null;
      return `cannot join a room with join rule '${joinRule}'`;
    }
    case "invite": {
      if (event.content.third_party_invite !== undefined) {
        if (targetMembership === "ban") return `${target} is banned from the room`;
        const token = field(event.content, "third_party_invite", "signed", "token");
        const tpi = typeof token === "string" ? c.get("m.room.third_party_invite", token) : undefined;
        return checkThirdPartyInvite(event, tpi as ThirdPartyInviteEvent | undefined);
      }
      if (senderMembership !== "join") return `${event.sender} is not joined to the room`;
      if (targetMembership === "join") return `${target} is already in the room`;
      if (targetMembership === "ban") return `${target} is banned from the room`;
      return c.senderLevel >= namedLevel("invite", c.powerLevels) ? null : "insufficient power level to invite";
    }
    case "leave": {
      if (event.sender === target) {
        return ["invite", "join", "knock"].includes(senderMembership) ? null : `${target} is not in the room`;
      }
      if (senderMembership !== "join") return `${event.sender} is not joined to the room`;
      if (targetMembership === "ban" && c.senderLevel < namedLevel("ban", c.powerLevels)) {
        return "insufficient power level to unban";
      }
      if (c.senderLevel >= namedLevel("kick", c.powerLevels) && c.level(target) < c.senderLevel) return null;
      return "insufficient power level to kick";
    }
    case "ban": {
      if (senderMembership !== "join") return `${event.sender} is not joined to the room`;
      if (c.senderLevel >= namedLevel("ban", c.powerLevels) && c.level(target) < c.senderLevel) return null;
      return "insufficient power level to ban";
    }
    case "knock": {
      if (joinRule !== "knock" && joinRule !== "knock_restricted") return "room does not allow knocking";
      if (event.sender !== target) return "cannot knock on behalf of another user";
      if (!["ban", "invite", "join"].includes(senderMembership)) return null;
      return `cannot knock with membership '${senderMembership}'`;
    }
    default:
      return `unknown membership '${membership}'`;
  }
}

/**
 * "The only previous event is the m.room.create event". With prev_events given that is checked
 * directly; without, the auth state must hold nothing but the create event.
 */
function isFirstEventAfterCreate(event: AuthCheckEvent, c: MembershipCtx): boolean {
  if (event.prev_events) return event.prev_events.length === 1 && event.prev_events[0] === c.create.event_id;
  return !c.get("m.room.power_levels", "") && !c.get("m.room.join_rules", "") && !c.get("m.room.member", event.sender);
}

/** The event a redaction targets: `content.redacts` from v11, top-level `redacts` before. */
export function redactsOf(event: { redacts?: unknown; content?: EventContent }, roomVersion: string) {
  const inContent = roomVersionRules(roomVersion)?.redactsInContent ?? false;
  const r = inContent ? (event.content?.redacts ?? event.redacts) : (event.redacts ?? event.content?.redacts);
  return typeof r === "string" ? r : undefined;
}

/**
 * rooms/v3 "Handling redactions": a redaction takes effect if the sender has the redact level, or
 * redacts an event sent from their own server (the client API narrows that to their own events).
 */
export function mayRedact(
  redactionSender: string,
  original: { sender: string } | undefined,
  powerLevels: PowerLevelsContent | undefined,
  createEvent: AuthEvent | undefined,
): boolean {
  if (powerLevelOf(redactionSender, powerLevels, createEvent) >= namedLevel("redact", powerLevels)) return true;
  return original !== undefined && original.sender === redactionSender;
}
