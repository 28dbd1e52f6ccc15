/**
 * Who can see a tagged stream write (stream.ts WriteTag), for the WebSocket hub: the users whose /sync it can
 * change (resolved once per write), and whether a connection's filter lets it through at all. A write that no
 * connection can receive wakes nobody, and a connection's fast path may step over it.
 */
import type { Homeserver } from "../hs.ts";
import { eventAllowed, type Filter, roomAllowed } from "../service/filters.ts";
import { loadMembers } from "../service/sync/context.ts";
import type { WriteTag } from "../stream.ts";

/** Whether /sync with this filter can carry `sender`'s presence (presence rows are per sender). */
export function wantsPresence(hs: Homeserver, filter: Filter, sender: string): boolean {
  const f = filter.presence;
  return hs.config.presence.enabled && f?.limit !== 0 && eventAllowed(f, "m.presence", sender);
}

/** Whether /sync with this filter can carry a receipt of `roomId` (ephemeral m.receipt of an allowed room). */
export function wantsReceipts(filter: Filter, roomId: string): boolean {
  const f = filter.room?.ephemeral;
  return (
    roomAllowed(filter.room, roomId) &&
    roomAllowed(f, roomId) &&
    f?.limit !== 0 &&
    eventAllowed(f, "m.receipt", undefined)
  );
}

/** Whether a connection's filter lets the write through at all (its audience aside). */
export function filterAllows(hs: Homeserver, tag: WriteTag, filter: Filter): boolean {
  if (tag.kind === "presence") return wantsPresence(hs, filter, tag.userId);
  if (tag.kind === "receipt") return wantsReceipts(filter, tag.roomId);
  return true;
}

/**
 * Whether a connection of `userId` with `filter` can receive the write. `audience`: from audienceOf, or null
 * when not looked up (then anyone the filter lets it through to counts, to be safe).
 */
export function affects(
  hs: Homeserver,
  tag: WriteTag,
  audience: Set<string> | null,
  userId: string,
  filter: Filter,
): boolean {
  return filterAllows(hs, tag, filter) && (audience === null || audience.has(userId));
}

/** Users joined to a room that `userId` is joined to, and the user: whoever /sync shows their presence and keys. */
async function sharing(hs: Homeserver, userIds: string[]): Promise<Set<string>> {
  const out = new Set(userIds);
  const rooms = new Set<string>();
  for (const u of userIds)
    for (const m of await hs.store.events.getRoomsForUser(u)) if (m.membership === "join") rooms.add(m.roomId);
  if (rooms.size === 0) return out;
  const ids = [...rooms];
  const members = await loadMembers(hs, ids, await hs.store.events.getRoomMaxStreams(ids));
  for (const rows of members.values()) for (const r of rows) if (r.membership === "join") out.add(r.userId);
  return out;
}

/** The users whose /sync the write can change (before their filters). */
export async function audienceOf(hs: Homeserver, tag: WriteTag): Promise<Set<string>> {
  switch (tag.kind) {
    case "users":
      return new Set(tag.userIds);
    case "presence":
      return hs.config.presence.enabled ? sharing(hs, [tag.userId]) : new Set();
    case "deviceLists":
      return sharing(hs, tag.userIds);
    case "receipt": {
      if (tag.private) return new Set([tag.userId]);
      const members = await loadMembers(hs, [tag.roomId], await hs.store.events.getRoomMaxStreams([tag.roomId]));
      const out = new Set([tag.userId]);
      for (const r of members.get(tag.roomId) ?? []) if (r.membership === "join") out.add(r.userId);
      return out;
    }
  }
}
