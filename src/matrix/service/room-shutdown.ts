/**
 * Shutting a room down (Synapse's DELETE /_synapse/admin/v1|v2/rooms/{roomId}, handlers/room.py shutdown_room):
 * optionally block it, optionally make a new public room (creator `newRoomUserId`, members muted at power -10,
 * a first message saying why), unpublish the old room, make every local member (joined, invited, knocking)
 * leave and forget it — joined members join the new room — and move its local aliases to the new room; then, with
 * `purge` (Synapse's default), delete every trace of the room from the store (RoomService.purgeRoom) — unless a local
 * member could not be removed, when `forcePurge` is needed (as Synapse). A member's client that had not synced its
 * leave before the purge keeps its stale copy of the room (as with Synapse).
 */
import { AmiError } from "../../core/errors.ts";
import { parseUserId } from "../events/index.ts";
import type { Homeserver } from "../hs.ts";
import { createAccount } from "./registration.ts";
import { forgetRoom } from "./room-access.ts";

export interface ShutdownRequest {
  roomId: string;
  /** The admin asking (recorded as the blocker). */
  by: string;
  newRoomUserId?: string;
  roomName?: string;
  message?: string;
  block?: boolean;
  /** Delete the room's history and state from the store after the members are out (Synapse's default: true). */
  purge?: boolean;
  /** Purge even if some local member could not be removed. */
  forcePurge?: boolean;
}

/** Synapse's `shutdown_room` result. */
export interface ShutdownResult {
  kicked_users: string[];
  failed_to_kick_users: string[];
  local_aliases: string[];
  new_room_id: string | null;
}

export const DEFAULT_ROOM_NAME = "Content Violation Notification";
export const DEFAULT_MESSAGE =
  "Sharing illegal content on this server is not permitted and rooms in violation will be blocked.";

/** Checks that can fail before anything changes: a bad new-room user, or an unknown room not being blocked. */
export async function checkShutdown(hs: Homeserver, r: ShutdownRequest): Promise<boolean> {
  if (r.newRoomUserId !== undefined && parseUserId(r.newRoomUserId)?.server !== hs.serverName)
    throw new AmiError("M_INVALID_PARAM", `User must be our own: ${r.newRoomUserId}`);
  const known = (await hs.store.rooms.getRoom(r.roomId)) !== null;
  if (!known && !r.block) throw new AmiError("M_INVALID_PARAM", `Unknown room ${r.roomId}`);
  return known;
}

export async function shutdownRoom(hs: Homeserver, r: ShutdownRequest): Promise<ShutdownResult> {
  const result: ShutdownResult = { kicked_users: [], failed_to_kick_users: [], local_aliases: [], new_room_id: null };
  const known = await checkShutdown(hs, r);
  if (r.block) await hs.store.rooms.setRoomBlocked(r.roomId, r.by);
  if (!known) return result;
  let newRoomId: string | null = null;
  if (r.newRoomUserId !== undefined) {
    // Synapse does not need the creator to be registered; here a room's creator must be a user, so make one
    // (no password: nobody can log in as it).
    const local = parseUserId(r.newRoomUserId)!.localpart;
    if (!(await hs.store.accounts.getUser(r.newRoomUserId)))
      await createAccount(hs, { localpart: local, password: null, admin: false });
    ({ roomId: newRoomId } = await hs.rooms.createRoom(r.newRoomUserId, {
      preset: "public_chat",
      name: r.roomName ?? DEFAULT_ROOM_NAME,
      power_level_content_override: { users_default: -10 },
    }));
    result.new_room_id = newRoomId;
  }
  await hs.store.rooms.setRoomPublic(r.roomId, false);
  const local = (await hs.store.events.getMembers(r.roomId)).filter(
    (m) => parseUserId(m.userId)?.server === hs.serverName && ["join", "invite", "knock"].includes(m.membership),
  );
  for (const m of local) {
    try {
      await hs.rooms.setMembership({ roomId: r.roomId, sender: m.userId, target: m.userId, membership: "leave" });
      await forgetRoom(hs, m.userId, r.roomId);
      if (newRoomId && m.membership === "join")
        await hs.rooms.setMembership({ roomId: newRoomId, sender: m.userId, target: m.userId, membership: "join" });
      result.kicked_users.push(m.userId);
    } catch (e) {
      hs.log.warn("room shutdown: could not move a member", { roomId: r.roomId, userId: m.userId, err: String(e) });
      result.failed_to_kick_users.push(m.userId);
    }
  }
  if (newRoomId && r.newRoomUserId) {
    await hs.rooms.sendEvent({
      roomId: newRoomId,
      sender: r.newRoomUserId,
      type: "m.room.message",
      content: { msgtype: "m.text", body: r.message ?? DEFAULT_MESSAGE },
    });
    result.local_aliases = await hs.store.rooms.getAliasesForRoom(r.roomId);
    for (const alias of result.local_aliases) {
      await hs.store.rooms.deleteAlias(alias);
      await hs.store.rooms.createAlias(alias, newRoomId, r.by);
    }
  }
  if (r.purge) {
    if (result.failed_to_kick_users.length === 0 || r.forcePurge) {
      const events = await hs.rooms.purgeRoom(r.roomId);
      hs.log.info("room purged", { roomId: r.roomId, events });
    } else hs.log.warn("room not purged: local members remain (force_purge to purge anyway)", { roomId: r.roomId });
  }
  hs.log.info("room shut down", { roomId: r.roomId, by: r.by, newRoomId, kicked: result.kicked_users.length });
  return result;
}
