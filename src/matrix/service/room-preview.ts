/**
 * Room previews for users who may not be in a room: who may see a room's summary (spec space_hierarchy.yaml's rule,
 * the same for room_summary.yaml; Synapse `_is_local_room_accessible`), and the summary itself (spec
 * definitions/room_summary.yaml: the PublishedRoomsChunk plus room_type, room_version, encryption and
 * allowed_room_ids).
 */
import type { Homeserver } from "../hs.ts";
import type { StoredEvent } from "../store/types.ts";
import { allowedRooms } from "./restricted-join.ts";
import { type PublishedRoom, summaryOfState } from "./room-directory.ts";

/** definitions/room_summary.yaml. */
export interface RoomPreview extends PublishedRoom {
  room_version?: string;
  encryption?: string;
  allowed_room_ids?: string[];
}

const OPEN_RULES = new Set(["public", "knock", "knock_restricted"]);
const RESTRICTED_RULES = new Set(["restricted", "knock_restricted"]);

const stateContent = (state: StoredEvent[], type: string, key = "") =>
  state.find((e) => e.type === type && e.stateKey === key)?.pdu.content;

/**
 * May `userId` (null: an unauthenticated request) see this room's summary? Yes when the room is public or
 * knockable, world-readable, the user is joined or invited, or its join rule is restricted and the user is joined to
 * one of the rooms its `allow` list names.
 */
export async function mayPreview(hs: Homeserver, userId: string | null, state: StoredEvent[]): Promise<boolean> {
  const joinRules = stateContent(state, "m.room.join_rules");
  const rule = String(joinRules?.join_rule);
  if (OPEN_RULES.has(rule)) return true;
  if (stateContent(state, "m.room.history_visibility")?.history_visibility === "world_readable") return true;
  if (userId === null) return false;
  const membership = stateContent(state, "m.room.member", userId)?.membership;
  if (membership === "join" || membership === "invite") return true;
  if (!RESTRICTED_RULES.has(rule)) return false;
  for (const roomId of allowedRooms(joinRules))
    if ((await hs.store.events.getMembership(roomId, userId))?.membership === "join") return true;
  return false;
}

/** The room's summary from its current state. */
export function previewOfState(roomId: string, version: string, state: StoredEvent[]): RoomPreview {
  const out: RoomPreview = { ...summaryOfState(roomId, state), room_version: version };
  const algorithm = stateContent(state, "m.room.encryption")?.algorithm;
  if (typeof algorithm === "string") out.encryption = algorithm;
  const joinRules = stateContent(state, "m.room.join_rules");
  if (RESTRICTED_RULES.has(String(joinRules?.join_rule))) {
    const allowed = allowedRooms(joinRules);
    if (allowed.length) out.allowed_room_ids = allowed;
  }
  return out;
}

/** A local room's summary and current state if `userId` may preview it; null for an unknown or hidden room. */
export async function roomPreview(
  hs: Homeserver,
  userId: string | null,
  roomId: string,
): Promise<{ preview: RoomPreview; state: StoredEvent[] } | null> {
  const room = await hs.store.rooms.getRoom(roomId);
  if (!room) return null;
  const state = await hs.store.events.getCurrentState(roomId);
  if (!(await mayPreview(hs, userId, state))) return null;
  return { preview: previewOfState(roomId, room.version, state), state };
}
