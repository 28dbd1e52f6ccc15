/**
 * /sync: unread_thread_notifications (spec "Receiving notifications", threads): when the room filter's
 * `unread_thread_notifications` is true, each joined room gets the notification counts of its threads, keyed by
 * thread root. A thread reply is unread after the user's read receipt in that thread (thread_id = the root), or an
 * unthreaded one, or their membership event; the user's push rules decide notify and highlight.
 * The room's own unread_notifications then count the main timeline only (spec): `inThreads` gives, per room, what
 * thread replies after the room-level receipt added to it, for the caller to take off.
 */
import type { Ruleset } from "../push-rules.ts";
import { evaluate } from "../push-rules.ts";
import { ownDisplayname, pushRules, roomMembers, type SyncCtx } from "./context.ts";
import type { UnreadNotificationCounts } from "./types.ts";

/** Thread replies read per sync at most (newest first): an older unread backlog is not counted. */
const MAX_REPLIES = 2000;

export interface ThreadUnreadRoom {
  roomId: string;
  maxStream: number | undefined;
  membershipStream: number;
}

export interface ThreadUnread {
  /** Per room, the threads with something unread: root event ID -> counts. */
  threads: Map<string, Record<string, UnreadNotificationCounts>>;
  /** Per room, the notifying thread replies after the room-level receipt (counted in the room's totals). */
  inThreads: Map<string, UnreadNotificationCounts>;
}

export async function threadUnreadCounts(ctx: SyncCtx, rooms: ThreadUnreadRoom[]): Promise<ThreadUnread> {
  const out = new Map<string, Record<string, UnreadNotificationCounts>>();
  const inThreads = new Map<string, UnreadNotificationCounts>();
  if (rooms.length === 0) return { threads: out, inThreads };
  const { store } = ctx.hs;
  const roomIds = rooms.map((r) => r.roomId);
  const receipts = (await store.ephemeral.getUserReceipts(ctx.userId, roomIds)).filter(
    (r) => r.type === "m.read" || r.type === "m.read.private",
  );
  const read = new Map(
    (receipts.length ? await store.events.getEvents(receipts.map((r) => r.eventId)) : []).map((e) => [e.eventId, e]),
  );
  /** Read-up-to streams: `room` (unthreaded receipts and the membership) and `room|root` (threaded ones). */
  const upto = new Map<string, number>();
  for (const r of rooms) upto.set(r.roomId, r.membershipStream);
  for (const r of receipts) {
    const e = read.get(r.eventId);
    if (!e || e.roomId !== r.roomId) continue;
    const key = r.threadId === null ? r.roomId : r.threadId === "main" ? null : `${r.roomId}|${r.threadId}`;
    if (key !== null) upto.set(key, Math.max(upto.get(key) ?? 0, e.stream));
  }
  const after = Math.min(...rooms.map((r) => upto.get(r.roomId) ?? 0));
  const rows = (await store.relations.getThreadReplies(roomIds, after, ctx.upto, ctx.userId, MAX_REPLIES)).filter(
    (r) => r.stream > (upto.get(r.roomId) ?? 0) && (r.type === "m.room.message" || r.type === "m.room.encrypted"),
  );
  if (rows.length === 0) return { threads: out, inThreads };
  const evs = new Map((await store.events.getEvents(rows.map((r) => r.eventId))).map((e) => [e.eventId, e]));
  const [rules, displayname]: [Ruleset, string | null] = await Promise.all([pushRules(ctx), ownDisplayname(ctx)]);
  const maxStreams = new Map(rooms.map((r) => [r.roomId, r.maxStream]));
  const joined = new Map<string, number>();
  for (const r of rows) {
    const e = evs.get(r.eventId);
    if (!e || e.redactedBy) continue;
    let memberCount = joined.get(r.roomId);
    if (memberCount === undefined) {
      const members = await roomMembers(ctx, r.roomId, maxStreams.get(r.roomId));
      memberCount = members.filter((m) => m.membership === "join").length;
      joined.set(r.roomId, memberCount);
    }
    const res = evaluate(
      rules,
      { ...e.pdu, room_id: r.roomId, sender: e.sender, type: e.type },
      { userId: ctx.userId, displayname, memberCount, senderCanNotifyRoom: false },
    );
    if (!res.notify && !res.highlight) continue;
    const total = inThreads.get(r.roomId) ?? { notification_count: 0, highlight_count: 0 };
    inThreads.set(r.roomId, total);
    if (res.notify) total.notification_count++;
    if (res.highlight) total.highlight_count++;
    if (r.stream <= (upto.get(`${r.roomId}|${r.relatesTo}`) ?? 0)) continue;
    const room = out.get(r.roomId) ?? {};
    out.set(r.roomId, room);
    const c = room[r.relatesTo] ?? { notification_count: 0, highlight_count: 0 };
    room[r.relatesTo] = c;
    if (res.notify) c.notification_count++;
    if (res.highlight) c.highlight_count++;
  }
  return { threads: out, inThreads };
}
