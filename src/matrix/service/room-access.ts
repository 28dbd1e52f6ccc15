/**
 * Room and alias ID checks, membership gates and forgetting rooms. Who may read which events is decided by
 * history visibility (visibility.ts).
 */
import { AmiError } from "../../core/errors.ts";
import { isValidRoomAlias, isValidRoomId } from "../events/ids.ts";
import type { Homeserver } from "../hs.ts";
import type { MembershipRow } from "../store/types.ts";

export function requireRoomId(roomId: string): string {
  if (!isValidRoomId(roomId)) throw new AmiError("M_INVALID_PARAM", `Invalid room ID '${roomId}'`);
  return roomId;
}

/** A room ID, or an alias on this server resolved through the alias table. */
export async function resolveRoom(hs: Homeserver, roomIdOrAlias: string): Promise<string> {
  if (roomIdOrAlias.startsWith("#")) {
    if (!isValidRoomAlias(roomIdOrAlias))
      throw new AmiError("M_INVALID_PARAM", `Invalid room alias '${roomIdOrAlias}'`);
    const a = await hs.store.rooms.getAlias(roomIdOrAlias);
    if (!a) throw new AmiError("M_NOT_FOUND", `Room alias ${roomIdOrAlias} not found`);
    return a.roomId;
  }
  return requireRoomId(roomIdOrAlias);
}

export async function requireRoom(hs: Homeserver, roomId: string): Promise<void> {
  requireRoomId(roomId);
  if (!(await hs.store.rooms.getRoom(roomId))) throw new AmiError("M_NOT_FOUND", `Unknown room ${roomId}`);
}

export async function historyVisibility(hs: Homeserver, roomId: string): Promise<string> {
  const e = await hs.store.events.getCurrentStateEvent(roomId, "m.room.history_visibility", "");
  const v = e?.pdu.content?.history_visibility;
  return typeof v === "string" ? v : "shared";
}

/** Throw M_FORBIDDEN unless the user is joined now. */
export async function requireJoined(hs: Homeserver, roomId: string, userId: string): Promise<void> {
  await requireRoom(hs, roomId);
  const m = await hs.store.events.getMembership(roomId, userId);
  if (m?.membership !== "join") throw new AmiError("M_FORBIDDEN", `${userId} is not joined to room ${roomId}`);
}

/** Room account data marking a room forgotten; it names the membership event it applies to. */
export const FORGOTTEN_TYPE = "ami.forgotten";

/** POST /rooms/{roomId}/forget: only once the user is out of the room. */
export async function forgetRoom(hs: Homeserver, userId: string, roomId: string): Promise<void> {
  requireRoomId(roomId);
  const m = await hs.store.events.getMembership(roomId, userId);
  if (m?.membership === "join" || m?.membership === "invite" || m?.membership === "knock") {
    throw new AmiError("M_UNKNOWN", "The user has not left the room", {}, 400);
  }
  if (!m) return;
  await hs.stream.write(
    (pos) =>
      hs.store.accountData.setAccountData({
        userId,
        roomId,
        type: FORGOTTEN_TYPE,
        content: { event_id: m.eventId },
        stream: pos,
      }),
    { kind: "users", userIds: [userId] },
  );
}

/**
 * For /sync's leave section: has the user forgotten the room since their current membership? A later
 * membership (rejoin, new invite) has another event ID, so the room comes back by itself.
 */
export async function isForgotten(hs: Homeserver, userId: string, m: MembershipRow): Promise<boolean> {
  const ad = await hs.store.accountData.getAccountData(userId, m.roomId, FORGOTTEN_TYPE);
  return ad?.content.event_id === m.eventId;
}
