/**
 * Room upgrades (spec room_upgrades.yaml and "Room Upgrades", Server behaviour), done as Synapse does
 * (`RoomCreationHandler.upgrade_room`): the requester must be able to send m.room.tombstone in the old room; the
 * new room's m.room.create names its `predecessor` and keeps the room type; the state Synapse copies is copied
 * (join rules, name, topic, history visibility, guest access, avatar, encryption, server ACL, power levels, and a
 * space's children); the requester's power is raised in the new room while that state is sent and restored after;
 * bans are copied; the tombstone goes into the old room; local aliases, the canonical alias and the directory
 * listing move to the new room; members' room tags, room push rules and m.direct entries follow; and the old room
 * is quietened (events_default and invite raised to max(users_default + 1, 50)). Members are not invited or
 * joined: clients follow the tombstone and join (Synapse's upgrade endpoint does the same).
 *
 * Into room version 12 (MSC4289): the upgrading user sends the new create event, so becomes its creator, with the
 * request's `additional_creators` (the whole set: creators of the old room who are not named are not creators of
 * the new one). Creators have an infinite level and may not be listed in power levels, so the copied power levels
 * drop them from `users` and the upgrader is not raised for the copy.
 */
import { AmiError } from "../../core/errors.ts";
import {
  isSupportedRoomVersion,
  parseUserId,
  powerLevelOf,
  requiredLevelForEvent,
  roomVersionRules,
  serverNameOf,
} from "../events/index.ts";
import type { EventContent, JsonObject, PowerLevelsContent } from "../events/types.ts";
import type { Homeserver } from "../hs.ts";
import type { StoredEvent } from "../store/types.ts";
import { getRuleset, RULE_KINDS, type Ruleset, updateRuleset } from "./push-rules.ts";
import { requireRoom } from "./room-access.ts";
import { authEventOf } from "./room-head.ts";
import { TAG_TYPE } from "./sync/account-data.ts";

/** Room state copied into the new room (Synapse's `types_to_copy`); a space's m.space.child events too. */
const COPIED_TYPES = [
  "m.room.join_rules",
  "m.room.name",
  "m.room.topic",
  "m.room.history_visibility",
  "m.room.guest_access",
  "m.room.avatar",
  "m.room.encryption",
  "m.room.server_acl",
  "m.room.power_levels",
];

/**
 * Upgrades under way or just done, by old room, kept for REPEAT_MS as Synapse's `_upgrade_response_cache` is: the
 * same user asking again gets the same answer (a retried request makes no second room), another user is refused.
 */
const recent = new Map<string, { userId: string; done: Promise<{ replacementRoom: string }> }>();
const REPEAT_MS = 5 * 60_000;

/** The answer of an upgrade of the room by `userId` already running or just done; M_UNKNOWN if by someone else. */
function repeated(oldRoomId: string, userId: string): Promise<{ replacementRoom: string }> | undefined {
  const r = recent.get(oldRoomId);
  if (r && r.userId !== userId)
    throw new AmiError("M_UNKNOWN", "An upgrade for this room is currently in progress", {}, 400);
  return r?.done;
}

const intOr = (v: unknown, d: number): number => (typeof v === "number" && Number.isInteger(v) ? v : d);

/** The level that sends every copied state event and the bans: state_default, ban and each `events` level. */
function neededLevel(pl: PowerLevelsContent): number {
  const events = pl.events && typeof pl.events === "object" ? Object.values(pl.events) : [];
  return Math.max(intOr(pl.state_default, 50), intOr(pl.ban, 50), ...events.map((v) => intOr(v, 0)), 0);
}

/** Throw M_FORBIDDEN unless `userId` is joined to the room and may send m.room.tombstone there. */
function checkMayUpgrade(userId: string, state: StoredEvent[]): void {
  const get = (type: string, key = "") => state.find((e) => e.type === type && e.stateKey === key);
  if (get("m.room.member", userId)?.pdu.content?.membership !== "join")
    throw new AmiError("M_FORBIDDEN", `${userId} is not joined to this room`);
  const create = get("m.room.create");
  const pl = get("m.room.power_levels")?.pdu.content as PowerLevelsContent | undefined;
  if (
    powerLevelOf(userId, pl, create ? authEventOf(create) : undefined) <
    requiredLevelForEvent("m.room.tombstone", true, pl)
  )
    throw new AmiError("M_FORBIDDEN", "You do not have the power to upgrade this room");
}

/** POST /rooms/{roomId}/upgrade: the replacement room's ID. */
export async function upgradeRoom(
  hs: Homeserver,
  userId: string,
  oldRoomId: string,
  newVersion: string,
  additionalCreators?: string[],
) {
  if (!isSupportedRoomVersion(newVersion))
    throw new AmiError("M_UNSUPPORTED_ROOM_VERSION", `Room version '${newVersion}' is not supported`);
  if (additionalCreators !== undefined && roomVersionRules(newVersion)?.privilegedCreators) {
    const bad = additionalCreators.find((u) => typeof u !== "string" || !parseUserId(u));
    if (bad !== undefined) throw new AmiError("M_BAD_JSON", `additional_creators: '${String(bad)}' is not a user ID`);
  }
  await requireRoom(hs, oldRoomId);
  const state = await hs.store.events.getCurrentState(oldRoomId);
  const again = repeated(oldRoomId, userId);
  if (again) return again;
  checkMayUpgrade(userId, state);
  const done = upgrade(hs, userId, oldRoomId, newVersion, state, additionalCreators ?? []);
  const entry = { userId, done };
  recent.set(oldRoomId, entry);
  const forget = () => {
    if (recent.get(oldRoomId) === entry) recent.delete(oldRoomId);
  };
  done.then(() => setTimeout(forget, REPEAT_MS).unref(), forget);
  return done;
}

async function upgrade(
  hs: Homeserver,
  userId: string,
  oldRoomId: string,
  newVersion: string,
  state: StoredEvent[],
  additionalCreators: string[],
): Promise<{ replacementRoom: string }> {
  const get = (type: string) => state.find((e) => e.type === type && e.stateKey === "");
  const oldCreate = get("m.room.create")?.pdu.content ?? {};
  const latest = await hs.store.events.getLatestEvent(oldRoomId);
  // The predecessor's event_id is "the last known event in the old room": the tombstone is sent after the new room
  // exists (it names it), so the last event before it is named.
  const creation: JsonObject = { predecessor: { room_id: oldRoomId, ...(latest ? { event_id: latest.eventId } : {}) } };
  if (typeof oldCreate.type === "string") creation.type = oldCreate.type;
  if (oldCreate["m.federate"] === false) creation["m.federate"] = false;
  const privileged = roomVersionRules(newVersion)?.privilegedCreators === true;
  const extra = [...new Set(additionalCreators)].filter((u) => u !== userId);
  if (privileged && extra.length > 0) creation.additional_creators = extra;
  const creators = privileged ? [userId, ...extra] : [];
  /** Power levels for the new room: without its creators in `users` (v12), else unchanged. */
  const forNewRoom = (pl: PowerLevelsContent): PowerLevelsContent => {
    if (!privileged || !pl.users) return pl;
    const users = Object.fromEntries(Object.entries(pl.users).filter(([u]) => !creators.includes(u)));
    return { ...pl, users };
  };

  const isSpace = oldCreate.type === "m.space";
  const copied = state.filter(
    (e) =>
      (e.stateKey === "" && COPIED_TYPES.includes(e.type)) ||
      (isSpace && e.type === "m.space.child" && Object.keys(e.pdu.content ?? {}).length > 0),
  );
  const oldPl = (get("m.room.power_levels")?.pdu.content ?? {}) as PowerLevelsContent;
  // Raised for the copy if needed; the old room's levels are restored once everything is sent.
  const needed = neededLevel(oldPl);
  const interimPl: PowerLevelsContent = { ...oldPl, users: { ...(oldPl.users ?? {}) } };
  const own = intOr(interimPl.users?.[userId], intOr(oldPl.users_default, 0));
  if (own < needed && !privileged) interimPl.users = { ...interimPl.users, [userId]: needed };

  const initialState = copied.map((e) => ({
    type: e.type,
    state_key: e.stateKey ?? "",
    content: e.type === "m.room.power_levels" ? forNewRoom(interimPl) : (e.pdu.content as EventContent),
  }));
  const { roomId: newRoomId } = await hs.rooms.createRoom(userId, {
    preset: "private_chat",
    room_version: newVersion,
    creation_content: creation,
    initial_state: initialState,
  });

  const send = (roomId: string, type: string, content: EventContent, stateKey = "") =>
    hs.rooms.sendEvent({ roomId, sender: userId, type, stateKey, content });
  for (const ban of await hs.store.events.getMembers(oldRoomId, "ban")) {
    const ev = await hs.store.events.getEvent(ban.eventId);
    try {
      await send(newRoomId, "m.room.member", { ...(ev?.pdu.content ?? {}), membership: "ban" }, ban.userId);
    } catch (e) {
      // A banned user whose power level the upgrader cannot override: the upgrade goes on without that ban.
      hs.log.warn("room upgrade: ban not copied", { newRoomId, userId: ban.userId, error: String(e) });
    }
  }

  await send(oldRoomId, "m.room.tombstone", { body: "This room has been replaced", replacement_room: newRoomId });
  await moveAliases(hs, userId, oldRoomId, newRoomId, get("m.room.canonical_alias")?.pdu.content);
  await carryUserState(hs, oldRoomId, newRoomId);
  const room = await hs.store.rooms.getRoom(oldRoomId);
  if (room?.isPublic) {
    await hs.store.rooms.setRoomPublic(oldRoomId, false);
    await hs.store.rooms.setRoomPublic(newRoomId, true);
  }
  await restrictOldRoom(hs, oldRoomId, send, oldPl);
  if (get("m.room.power_levels")) await send(newRoomId, "m.room.power_levels", forNewRoom(oldPl));
  hs.log.info("room upgraded", { oldRoomId, newRoomId, version: newVersion });
  return { replacementRoom: newRoomId };
}

/**
 * Local aliases point at the new room; the canonical alias and this server's alt_aliases move from the old room's
 * m.room.canonical_alias to the new room's (Synapse `_move_aliases_to_new_room`). Failures to send are logged, not
 * thrown: the new room exists and the client should learn its ID.
 */
async function moveAliases(
  hs: Homeserver,
  userId: string,
  oldRoomId: string,
  newRoomId: string,
  canonical: EventContent | undefined,
): Promise<void> {
  await hs.store.rooms.moveAliases(oldRoomId, newRoomId);
  if (!canonical) return;
  const local = (a: unknown): a is string => typeof a === "string" && serverNameOf(a) === hs.serverName;
  const oldContent: EventContent = { ...canonical };
  const newContent: EventContent = {};
  if (local(canonical.alias)) {
    newContent.alias = canonical.alias;
    delete oldContent.alias;
  }
  if (Array.isArray(canonical.alt_aliases) && canonical.alt_aliases.length > 0) {
    newContent.alt_aliases = canonical.alt_aliases.filter(local);
    const rest = canonical.alt_aliases.filter((a) => !local(a));
    if (rest.length) oldContent.alt_aliases = rest;
    else delete oldContent.alt_aliases;
  }
  for (const [roomId, content] of [
    [oldRoomId, oldContent],
    [newRoomId, newContent],
  ] as const) {
    try {
      await hs.rooms.sendEvent({ roomId, sender: userId, type: "m.room.canonical_alias", stateKey: "", content });
    } catch (e) {
      hs.log.warn("room upgrade: canonical alias not updated", { roomId, error: String(e) });
    }
  }
}

/**
 * A user's enabled push rules for the old room, copied for the new one under the new room's ID (Synapse
 * `copy_push_rules_from_room_to_room_for_user`): the `room` rule named by the old room's ID, and override or
 * underride rules with a `room_id` condition naming it. Each copy goes right after its original. True if any.
 */
export function copyRoomRules(rules: Ruleset, oldRoomId: string, newRoomId: string): boolean {
  let copied = false;
  for (const kind of RULE_KINDS) {
    const list = rules[kind];
    for (let i = list.length - 1; i >= 0; i--) {
      const r = list[i];
      const names = (c: JsonObject) => c.key === "room_id" && c.pattern === oldRoomId;
      const forOld = kind === "room" ? r.rule_id === oldRoomId : (r.conditions ?? []).some(names);
      if (r.default || !r.enabled || !forOld || list.some((x) => x.rule_id === newRoomId)) continue;
      const conditions = r.conditions?.map((c) => (names(c) ? { ...c, pattern: newRoomId } : c));
      list.splice(i + 1, 0, { ...r, rule_id: newRoomId, ...(conditions ? { conditions } : {}) });
      copied = true;
    }
  }
  return copied;
}

/**
 * Each local member's room tags and push rules for the room are copied, and m.direct entries naming the old room
 * name the new one too (Synapse `copy_room_tags_and_direct_to_room`, `copy_user_state_on_room_upgrade`).
 */
async function carryUserState(hs: Homeserver, oldRoomId: string, newRoomId: string): Promise<void> {
  const members = await hs.store.events.getMembers(oldRoomId, "join");
  for (const { userId } of members) {
    if (serverNameOf(userId) !== hs.serverName) continue;
    if (copyRoomRules(await getRuleset(hs, userId), oldRoomId, newRoomId))
      await updateRuleset(hs, userId, (rules) => copyRoomRules(rules, oldRoomId, newRoomId));
    const tags = await hs.store.accountData.getAccountData(userId, oldRoomId, TAG_TYPE);
    if (tags) await putData(hs, userId, newRoomId, TAG_TYPE, tags.content);
    const direct = await hs.store.accountData.getAccountData(userId, null, "m.direct");
    if (!direct) continue;
    const content: JsonObject = { ...direct.content };
    let changed = false;
    for (const [peer, rooms] of Object.entries(content)) {
      if (Array.isArray(rooms) && rooms.includes(oldRoomId) && !rooms.includes(newRoomId)) {
        content[peer] = [...rooms, newRoomId];
        changed = true;
      }
    }
    if (changed) await putData(hs, userId, null, "m.direct", content);
  }
}

function putData(hs: Homeserver, userId: string, roomId: string | null, type: string, content: JsonObject) {
  return hs.stream.write((stream) => hs.store.accountData.setAccountData({ userId, roomId, type, content, stream }), {
    kind: "users",
    userIds: [userId],
  });
}

/** Stop ordinary members speaking and inviting in the old room (Synapse `_update_upgraded_room_pls`). */
async function restrictOldRoom(
  hs: Homeserver,
  oldRoomId: string,
  send: (roomId: string, type: string, content: EventContent) => Promise<unknown>,
  pl: PowerLevelsContent,
): Promise<void> {
  if (Object.keys(pl).length === 0) return;
  const restricted = Math.max(intOr(pl.users_default, 0) + 1, 50);
  const next: PowerLevelsContent = { ...pl };
  let changed = false;
  for (const key of ["invite", "events_default"] as const) {
    if (intOr(pl[key], 0) < restricted) {
      next[key] = restricted;
      changed = true;
    }
  }
  if (!changed) return;
  try {
    await send(oldRoomId, "m.room.power_levels", next);
  } catch (e) {
    hs.log.warn("room upgrade: old room's power levels not restricted", { oldRoomId, error: String(e) });
  }
}
