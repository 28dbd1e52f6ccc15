/**
 * Who may read what in a room (spec "History visibility"), room/alias ID checks, and forgetting rooms.
 *
 * Visibility is computed as one stream window per user and room rather than per event: a joined user sees
 * up to now, a user who left or was banned sees up to that event; with `joined`/`invited` history the window
 * starts at the user's current run of joins. A history_visibility change mid-history is not replayed.
 */
import { AmiError } from "../../core/errors.ts";
import { isValidRoomAlias, isValidRoomId } from "../events/ids.ts";
import type { Homeserver } from "../hs.ts";
import type { MembershipRow, StoredEvent } from "../store/types.ts";

export const MAX_STREAM = Number.MAX_SAFE_INTEGER;

export interface ReadWindow {
  /** Inclusive lowest and highest stream positions the user may see. */
  lower: number;
  upper: number;
  /** The user's current membership (null: none). */
  membership: string | null;
  /** The user is joined now: reads come from current state. */
  joined: boolean;
}

export function requireRoomId(roomId: string): string {
  if (!isValidRoomId(roomId)) throw new AmiError("M_INVALID_PARAM", `Invalid room ID '${roomId}'`);
  return roomId;
}

/** A room ID, or an alias on this server resolved through the alias table. */
export async function resolveRoom(hs: Homeserver, roomIdOrAlias: string): Promise<string> {
  if (roomIdOrAlias.startsWith("#")) {
    if (!isValidRoomAlias(roomIdOrAlias))
      throw new AmiError("M_INVALID_PARAM", `Invalid room alias '${roomIdOrAlias}'`);
    const a = await hs.store.getAlias(roomIdOrAlias);
    if (!a) throw new AmiError("M_NOT_FOUND", `Room alias ${roomIdOrAlias} not found`);
    return a.roomId;
  }
  return requireRoomId(roomIdOrAlias);
}

export async function requireRoom(hs: Homeserver, roomId: string): Promise<void> {
  requireRoomId(roomId);
  if (!(await hs.store.getRoom(roomId))) throw new AmiError("M_NOT_FOUND", `Unknown room ${roomId}`);
}

export async function historyVisibility(hs: Homeserver, roomId: string): Promise<string> {
  const e = await hs.store.getCurrentStateEvent(roomId, "m.room.history_visibility", "");
  const v = e?.pdu.content?.history_visibility;
  return typeof v === "string" ? v : "shared";
}

/** The stream window `userId` may read in `roomId`; M_FORBIDDEN when none. */
export async function readWindow(hs: Homeserver, roomId: string, userId: string): Promise<ReadWindow> {
  await requireRoom(hs, roomId);
  const [m, hv] = await Promise.all([hs.store.getMembership(roomId, userId), historyVisibility(hs, roomId)]);
  const membership = m?.membership ?? null;
  if (membership === "join") {
    const lower = hv === "joined" || hv === "invited" ? await joinRunStart(hs, roomId, userId, m!) : 0;
    return { lower, upper: MAX_STREAM, membership, joined: true };
  }
  if (m && (membership === "leave" || membership === "ban")) {
    // Only a user who was joined right before leaving gets to keep reading up to the leave.
    const before = await hs.store.getStateAt(roomId, m.stream - 1, ["m.room.member"]);
    const prior = before.find((e) => e.stateKey === userId)?.pdu.content?.membership;
    if (prior === "join") {
      const lower = hv === "joined" || hv === "invited" ? await joinRunStart(hs, roomId, userId, m) : 0;
      return { lower, upper: m.stream, membership, joined: false };
    }
  }
  if (hv === "world_readable") return { lower: 0, upper: MAX_STREAM, membership, joined: false };
  if (membership === "invite" && hv === "invited")
    return { lower: m!.stream, upper: MAX_STREAM, membership, joined: false };
  throw new AmiError("M_FORBIDDEN", `${userId} is not in room ${roomId}`);
}

/** Stream of the first join in the user's latest unbroken run of joins (joins are always self-sent). */
async function joinRunStart(hs: Homeserver, roomId: string, userId: string, m: MembershipRow): Promise<number> {
  const mine = await hs.store.getRoomEvents({
    roomId,
    dir: "b",
    from: m.stream + 1,
    limit: 50,
    types: ["m.room.member"],
    senders: [userId],
  });
  let start = m.stream;
  for (const e of mine) {
    if (e.stateKey !== userId) continue;
    if (e.pdu.content?.membership !== "join") break;
    start = e.stream;
  }
  return start;
}

/** Throw M_FORBIDDEN unless the user is joined now. */
export async function requireJoined(hs: Homeserver, roomId: string, userId: string): Promise<void> {
  await requireRoom(hs, roomId);
  const m = await hs.store.getMembership(roomId, userId);
  if (m?.membership !== "join") throw new AmiError("M_FORBIDDEN", `${userId} is not joined to room ${roomId}`);
}

/** Room account data marking a room forgotten; it names the membership event it applies to. */
export const FORGOTTEN_TYPE = "ami.forgotten";

/** POST /rooms/{roomId}/forget: only once the user is out of the room. */
export async function forgetRoom(hs: Homeserver, userId: string, roomId: string): Promise<void> {
  requireRoomId(roomId);
  const m = await hs.store.getMembership(roomId, userId);
  if (m?.membership === "join" || m?.membership === "invite" || m?.membership === "knock") {
    throw new AmiError("M_UNKNOWN", "The user has not left the room", {}, 400);
  }
  if (!m) return;
  await hs.stream.write(
    (pos) =>
      hs.store.setAccountData({ userId, roomId, type: FORGOTTEN_TYPE, content: { event_id: m.eventId }, stream: pos }),
    { kind: "users", userIds: [userId] },
  );
}

/**
 * For /sync's leave section: has the user forgotten the room since their current membership? A later
 * membership (rejoin, new invite) has another event ID, so the room comes back by itself.
 */
export async function isForgotten(hs: Homeserver, userId: string, m: MembershipRow): Promise<boolean> {
  const ad = await hs.store.getAccountData(userId, m.roomId, FORGOTTEN_TYPE);
  return ad?.content.event_id === m.eventId;
}

/** The room state as the user may see it: current while joined (or world-readable), else as of their leave. */
export async function readableState(
  hs: Homeserver,
  roomId: string,
  userId: string,
  types?: string[],
): Promise<StoredEvent[]> {
  const w = await readWindow(hs, roomId, userId);
  if (w.upper === MAX_STREAM) {
    const all = await hs.store.getCurrentState(roomId);
    return types ? all.filter((e) => types.includes(e.type)) : all;
  }
  return hs.store.getStateAt(roomId, w.upper, types);
}
