/**
 * The notifications recorded for a user (push.ts records them when push rules say `notify`): GET /notifications,
 * and the unread count pushed to gateways. A notification is read when the user's read receipt (m.read or
 * m.read.private, unthreaded or main, as /sync's unread counts) is at or after its event.
 */
import type { ClientEvent } from "../events/types.ts";
import type { Homeserver } from "../hs.ts";
import type { NotificationRow } from "../store/types.ts";
import type { Requester } from "./requester.ts";

/** Unread counts pushed to gateways stop at this many (the newest notifications are read, not all). */
const UNREAD_SCAN = 100;

/** Stream of the user's read receipt in each of these rooms (rooms without one are absent). */
async function readUpTo(hs: Homeserver, userId: string, roomIds: string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (roomIds.length === 0) return out;
  const receipts = (await hs.store.ephemeral.getReceiptsOfUsers([userId], roomIds)).filter(
    (r) => (r.type === "m.read" || r.type === "m.read.private") && (r.threadId === null || r.threadId === "main"),
  );
  if (receipts.length === 0) return out;
  const events = await hs.store.events.getEvents([...new Set(receipts.map((r) => r.eventId))]);
  for (const e of events) out.set(e.roomId, Math.max(out.get(e.roomId) ?? 0, e.stream));
  return out;
}

const isRead = (n: NotificationRow, read: Map<string, number>) => n.stream <= (read.get(n.roomId) ?? -1);

/** Unread notifications of the user over all rooms, counting the newest UNREAD_SCAN. */
export async function unreadNotificationCount(hs: Homeserver, userId: string): Promise<number> {
  const rows = await hs.store.pushers.getNotifications(userId, { limit: UNREAD_SCAN, onlyHighlight: false });
  const read = await readUpTo(hs, userId, [...new Set(rows.map((r) => r.roomId))]);
  return rows.filter((r) => !isRead(r, read)).length;
}

export interface NotificationsPage {
  notifications: {
    actions: unknown[];
    event: ClientEvent;
    profile_tag?: string;
    read: boolean;
    room_id: string;
    ts: number;
  }[];
  next_token?: string;
}

/** GET /notifications: newest first, stream < `from`; next_token when the page is full. */
export async function listNotifications(
  hs: Homeserver,
  requester: Requester,
  opts: { from?: number; limit: number; onlyHighlight: boolean },
): Promise<NotificationsPage> {
  const rows = await hs.store.pushers.getNotifications(requester.userId, {
    before: opts.from,
    limit: opts.limit,
    onlyHighlight: opts.onlyHighlight,
  });
  const stored = await hs.store.events.getEvents(rows.map((r) => r.eventId));
  const formatted = await hs.clientEvents(stored, requester);
  const byId = new Map(formatted.map((e) => [e.event_id, e]));
  const read = await readUpTo(hs, requester.userId, [...new Set(rows.map((r) => r.roomId))]);
  const page: NotificationsPage = { notifications: [] };
  for (const r of rows) {
    const event = byId.get(r.eventId);
    if (!event) continue;
    page.notifications.push({
      actions: r.actions,
      event,
      ...(r.profileTag !== null ? { profile_tag: r.profileTag } : {}),
      read: isRead(r, read),
      room_id: r.roomId,
      ts: r.ts,
    });
  }
  if (rows.length === opts.limit && rows.length > 0) page.next_token = String(rows[rows.length - 1].stream);
  return page;
}
