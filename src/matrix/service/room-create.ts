/** createRoom (spec create_room.yaml): the request schema and the ordered events that make a new room. */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import {
  contentHash,
  eventIdFor,
  isSupportedRoomVersion,
  isValidRoomAlias,
  parseUserId,
  randomString,
  roomIdOfCreateEvent,
  roomVersionRules,
} from "../events/index.ts";
import type { CreateContent, EventContent, JsonObject, PowerLevelsContent } from "../events/types.ts";
import type { Homeserver, RoomService } from "../hs.ts";
import { parseBody } from "../validate.ts";

const obj = z.record(z.string(), z.any());

export const createRoomSchema = z.object({
  visibility: z.enum(["public", "private"]).optional(),
  room_alias_name: z.string().optional(),
  name: z.string().optional(),
  topic: z.string().optional(),
  invite: z.array(z.string()).optional(),
  invite_3pid: z.array(obj).optional(),
  room_version: z.string().optional(),
  creation_content: obj.optional(),
  initial_state: z
    .array(z.object({ type: z.string().min(1), state_key: z.string().optional(), content: obj }))
    .optional(),
  preset: z.enum(["private_chat", "public_chat", "trusted_private_chat"]).optional(),
  is_direct: z.boolean().optional(),
  power_level_content_override: obj.optional(),
});
export type CreateRoomBody = z.infer<typeof createRoomSchema>;

const PRESETS = {
  private_chat: { join_rule: "invite", history_visibility: "shared", guest_access: "can_join" },
  trusted_private_chat: { join_rule: "invite", history_visibility: "shared", guest_access: "can_join" },
  public_chat: { join_rule: "public", history_visibility: "shared", guest_access: "forbidden" },
} as const;

/**
 * Synapse's defaults, which clients (Element) expect: admin-only for the room-shaping state events. Room version
 * 12 (MSC4289): creators are not listed (their level is infinite), and upgrading (m.room.tombstone) needs 150, above
 * any admin, so by default only creators can hand the room on.
 */
export function defaultPowerLevels(creator: string, roomVersion: string): PowerLevelsContent {
  const v12 = roomVersionRules(roomVersion)?.privilegedCreators === true;
  return {
    users: v12 ? {} : { [creator]: 100 },
    users_default: 0,
    events: {
      "m.room.name": 50,
      "m.room.power_levels": 100,
      "m.room.history_visibility": 100,
      "m.room.canonical_alias": 50,
      "m.room.avatar": 50,
      "m.room.tombstone": v12 ? 150 : 100,
      "m.room.server_acl": 100,
      "m.room.encryption": 100,
    },
    events_default: 0,
    state_default: 50,
    ban: 50,
    kick: 50,
    redact: 50,
    invite: 0,
    historical: 100,
    notifications: { room: 50 },
  };
}

export async function createRoom(
  hs: Homeserver,
  rooms: RoomService,
  creator: string,
  raw: JsonObject,
): Promise<{ roomId: string }> {
  const body = parseBody(createRoomSchema, raw);
  const version = body.room_version ?? hs.config.defaultRoomVersion;
  if (!isSupportedRoomVersion(version))
    throw new AmiError("M_UNSUPPORTED_ROOM_VERSION", `Room version '${version}' is not supported`);
  const invites = [...new Set(body.invite ?? [])].filter((u) => u !== creator);
  // Checked up front so a bad invitee does not leave a half-made room behind.
  for (const u of invites) {
    const id = parseUserId(u);
    if (!id) throw new AmiError("M_INVALID_PARAM", `Invalid user ID in 'invite': '${u}'`);
    if (id.server === hs.serverName && !(await hs.store.accounts.getUser(u)))
      throw new AmiError("M_NOT_FOUND", `Unknown user ${u}`);
  }
  if (body.invite_3pid?.length) throw new AmiError("M_UNRECOGNIZED", "Third-party invites are not supported");
  const preset = body.preset ?? (body.visibility === "public" ? "public_chat" : "private_chat");
  const rules = roomVersionRules(version)!;

  let alias: string | undefined;
  if (body.room_alias_name !== undefined) {
    alias = `#${body.room_alias_name}:${hs.serverName}`;
    if (!body.room_alias_name || /[:\s#]/.test(body.room_alias_name) || !isValidRoomAlias(alias)) {
      throw new AmiError("M_INVALID_PARAM", `Invalid room alias name '${body.room_alias_name}'`);
    }
    if (await hs.store.rooms.getAlias(alias))
      throw new AmiError("M_ROOM_IN_USE", `Room alias ${alias} is already taken`);
  }

  const creation: CreateContent = { ...(body.creation_content ?? {}), room_version: version };
  // v11 dropped `creator`: the create event's sender is the creator.
  if (version === "10") creation.creator = creator;
  else delete creation.creator;
  let creators = [creator];
  if (rules.privilegedCreators) {
    // v12 (MSC4289): additional creators, checked here so a bad list leaves no half-made room. A trusted private
    // chat (a DM) makes its invitees creators too, as the spec says servers should.
    const extra = creation.additional_creators;
    if (extra !== undefined && (!Array.isArray(extra) || !extra.every((u) => typeof u === "string" && parseUserId(u))))
      throw new AmiError("M_BAD_JSON", "creation_content.additional_creators must be an array of user IDs");
    const all = [...(extra ?? []), ...(preset === "trusted_private_chat" ? invites : [])];
    const additional = [...new Set(all)].filter((u) => u !== creator);
    if (additional.length > 0) creation.additional_creators = additional;
    else delete creation.additional_creators;
    creators = [creator, ...additional];
  }
  let createdTs = Date.now();
  const roomIdAt = (ts: number): string => {
    if (!rules.roomIdIsCreateHash) return `!${randomString(18)}:${hs.serverName}`;
    // v12: the room ID is the create event's reference hash; the room service builds this same PDU (same
    // timestamp, depth 1, no prev or auth events, no room_id) and checks it hashes to this ID.
    const pdu = {
      sender: creator,
      type: "m.room.create",
      state_key: "",
      content: creation,
      origin_server_ts: ts,
      depth: 1,
      prev_events: [],
      auth_events: [],
    };
    return roomIdOfCreateEvent(eventIdFor({ ...pdu, hashes: { sha256: contentHash(pdu) } }, version));
  };
  let roomId = roomIdAt(createdTs);

  const isPublic = body.visibility === "public";
  const pl: PowerLevelsContent = {
    ...defaultPowerLevels(creator, version),
    ...(body.initial_state?.find((e) => e.type === "m.room.power_levels" && (e.state_key ?? "") === "")?.content ?? {}),
  };
  if (preset === "trusted_private_chat" && !rules.privilegedCreators)
    for (const u of invites) pl.users = { ...pl.users, [u]: 100 };
  if (rules.privilegedCreators) {
    // v12 (createRoom, step 3): m.room.tombstone explicitly above state_default (150 by default) unless overridden.
    const stateDefault = Number.isInteger(pl.state_default) ? (pl.state_default as number) : 50;
    const events = { ...(pl.events ?? {}) };
    const t = events["m.room.tombstone"];
    if (!Number.isInteger(t) || t <= stateDefault) events["m.room.tombstone"] = Math.max(150, stateDefault + 1);
    pl.events = events;
  }
  Object.assign(pl, body.power_level_content_override ?? {});
  if (rules.privilegedCreators && pl.users && typeof pl.users === "object") {
    const listed = creators.filter((c) => Object.hasOwn(pl.users!, c));
    if (listed.length > 0)
      throw new AmiError(
        "M_BAD_JSON",
        `Room version ${version}: power levels cannot list the room's creators (${listed.join(", ")}) in 'users'`,
      );
  }

  // v12: the same user creating rooms of the same creation content in the same millisecond would make the same
  // room ID; the next one takes the next millisecond as its create event's timestamp.
  for (let attempt = 0; ; attempt++) {
    try {
      await hs.store.rooms.createRoom({ roomId, version, creator, createdTs, isPublic });
      break;
    } catch (e) {
      if (!(e instanceof AmiError && e.code === "M_ROOM_IN_USE") || attempt >= 100) throw e;
      createdTs++;
      roomId = roomIdAt(createdTs);
    }
  }
  if (alias && !(await hs.store.rooms.createAlias(alias, roomId, creator))) {
    throw new AmiError("M_ROOM_IN_USE", `Room alias ${alias} is already taken`);
  }

  const state = (type: string, content: EventContent, key = "") =>
    rooms.sendEvent({ roomId, sender: creator, type, stateKey: key, content });
  await rooms.sendEvent({
    roomId,
    sender: creator,
    type: "m.room.create",
    stateKey: "",
    content: creation,
    ts: createdTs,
  });
  await rooms.setMembership({ roomId, sender: creator, target: creator, membership: "join" });

  const initial = (body.initial_state ?? []).filter(
    (e) =>
      !(body.name !== undefined && e.type === "m.room.name") &&
      !(body.topic !== undefined && e.type === "m.room.topic"),
  );
  const inInitial = (type: string) => initial.some((e) => e.type === type && (e.state_key ?? "") === "");

  await state("m.room.power_levels", pl);

  if (alias) await state("m.room.canonical_alias", { alias });

  const p = PRESETS[preset];
  if (!inInitial("m.room.join_rules")) await state("m.room.join_rules", { join_rule: p.join_rule });
  if (!inInitial("m.room.history_visibility"))
    await state("m.room.history_visibility", { history_visibility: p.history_visibility });
  if (!inInitial("m.room.guest_access")) await state("m.room.guest_access", { guest_access: p.guest_access });

  for (const e of initial) {
    if (e.type === "m.room.power_levels" && (e.state_key ?? "") === "") continue; // merged above
    await state(e.type, e.content, e.state_key ?? "");
  }
  if (body.name !== undefined) await state("m.room.name", { name: body.name });
  if (body.topic !== undefined) {
    await state("m.room.topic", {
      topic: body.topic,
      "m.topic": { "m.text": [{ mimetype: "text/plain", body: body.topic }] },
    });
  }
  for (const target of invites) {
    await rooms.setMembership({
      roomId,
      sender: creator,
      target,
      membership: "invite",
      extra: body.is_direct ? { is_direct: true } : undefined,
    });
  }
  return { roomId };
}
