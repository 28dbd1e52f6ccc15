/** /sync: ephemeral events (m.typing, m.receipt) and unread notification counts of joined rooms. */
import type { ReceiptRow, StoredEvent } from "../store/types.ts";
import { eventAllowed, limitNewest, roomAllowed } from "./filters.ts";
import { evaluate, type NotifyContext } from "./push-rules.ts";
import { ownDisplayname, pushRules, pushRulesWithStamp, roomMembers, type SyncCtx } from "./sync-context.ts";

/** Receipts of these rooms newer than `since` (all of them on an initial sync), grouped by room. */
export async function receiptsByRoom(ctx: SyncCtx, roomIds: string[]): Promise<Map<string, ReceiptRow[]>> {
  const out = new Map<string, ReceiptRow[]>();
  if (roomIds.length === 0) return out;
  const rows = await ctx.hs.store.getReceiptsSince(roomIds, ctx.since?.stream ?? 0);
  for (const r of rows) {
    if (r.stream > ctx.upto) continue;
    // Private receipts are only ever shown to their owner (spec: m.read.private).
    if (r.type === "m.read.private" && r.userId !== ctx.userId) continue;
    const list = out.get(r.roomId);
    if (list) list.push(r);
    else out.set(r.roomId, [r]);
  }
  return out;
}

/** Rooms whose typing set changed since the token (every room with someone typing on an initial sync). */
export function typingRooms(ctx: SyncCtx, joined: Iterable<string>): Set<string> {
  const { typing } = ctx.hs;
  if (ctx.typingSince >= 0) return typing.changedSince(ctx.typingSince);
  const out = new Set<string>();
  for (const r of joined) if (typing.typingIn(r).length) out.add(r);
  return out;
}

export function ephemeralEvents(
  ctx: SyncCtx,
  roomId: string,
  typingChanged: boolean,
  receipts: ReceiptRow[] | undefined,
): Record<string, any>[] {
  const f = ctx.filter.room?.ephemeral;
  if (!roomAllowed(f, roomId)) return [];
  const out: Record<string, any>[] = [];
  if (typingChanged && eventAllowed(f, "m.typing", undefined)) {
    out.push({ type: "m.typing", content: { user_ids: ctx.hs.typing.typingIn(roomId) } });
  }
  if (receipts?.length && eventAllowed(f, "m.receipt", undefined)) {
    const content: Record<string, Record<string, Record<string, Record<string, any>>>> = {};
    for (const r of receipts) {
      if (f?.not_senders?.includes(r.userId) || (f?.senders && !f.senders.includes(r.userId))) continue;
      content[r.eventId] ??= {};
      const byType = content[r.eventId];
      byType[r.type] ??= {};
      const users = byType[r.type];
      const receipt: Record<string, any> = { ts: r.ts };
      if (r.threadId !== null) receipt.thread_id = r.threadId;
      users[r.userId] = receipt;
    }
    if (Object.keys(content).length) out.push({ type: "m.receipt", content });
  }
  return limitNewest(out, f);
}

const NOTIFYING_TYPES = ["m.room.message", "m.room.encrypted", "m.call.invite", "m.room.tombstone"];
/**
 * Unread events evaluated one by one against push rules, newest first; older ones beyond this are counted as
 * notifying without a highlight. Results are kept per (user, room) and extended as the room grows, so only a
 * cold start with a long unread backlog is approximate.
 */
const EVALUATE_MAX = 25;

interface Counts {
  notification_count: number;
  highlight_count: number;
}
interface CachedCounts extends Counts {
  after: number;
  upto: number;
  /** Push rules version and display name the counts were evaluated with. */
  stamp: string;
}
const countCaches = new WeakMap<object, Map<string, CachedCounts>>();

/**
 * unread_notifications: events after the user's read receipt (m.read or m.read.private, unthreaded or main),
 * or after their membership event when they have none, that the user's push rules make notify/highlight.
 */
export async function unreadCounts(
  ctx: SyncCtx,
  roomId: string,
  maxStream: number | undefined,
  membershipStream: number,
): Promise<Counts> {
  const { store } = ctx.hs;
  const ids = (
    await Promise.all([
      store.getReceipt(roomId, ctx.userId, "m.read", null),
      store.getReceipt(roomId, ctx.userId, "m.read.private", null),
      store.getReceipt(roomId, ctx.userId, "m.read", "main"),
      store.getReceipt(roomId, ctx.userId, "m.read.private", "main"),
    ])
  ).flatMap((r) => (r ? [r.eventId] : []));
  let after = membershipStream;
  if (ids.length)
    for (const e of await store.getEvents(ids)) if (e.roomId === roomId) after = Math.max(after, e.stream);
  const upto = Math.min(ctx.upto, maxStream ?? ctx.upto);
  if (after >= upto) return { notification_count: 0, highlight_count: 0 };

  const cache = countCaches.get(ctx.hs) ?? new Map<string, CachedCounts>();
  countCaches.set(ctx.hs, cache);
  const key = `${ctx.userId}|${roomId}`;
  const hit = cache.get(key);
  const stamp = `${(await pushRulesWithStamp(ctx)).stamp}|${await ownDisplayname(ctx)}`;
  let counts: Counts;
  if (hit && hit.after === after && hit.upto <= upto && hit.stamp === stamp) {
    const more =
      hit.upto === upto
        ? { notification_count: 0, highlight_count: 0 }
        : await countRange(ctx, roomId, maxStream, hit.upto, upto);
    counts = {
      notification_count: hit.notification_count + more.notification_count,
      highlight_count: hit.highlight_count + more.highlight_count,
    };
  } else counts = await countRange(ctx, roomId, maxStream, after, upto);
  if (cache.size > 50_000) cache.clear();
  cache.set(key, { ...counts, after, upto, stamp });
  return counts;
}

/** Notifying/highlighting events with stream in (lo, hi], not sent by the user. */
async function countRange(
  ctx: SyncCtx,
  roomId: string,
  maxStream: number | undefined,
  lo: number,
  hi: number,
): Promise<Counts> {
  const { store } = ctx.hs;
  const evs = await store.getRoomEvents({
    roomId,
    dir: "b",
    from: hi + 1,
    to: lo,
    limit: EVALUATE_MAX,
    types: NOTIFYING_TYPES,
    notSenders: [ctx.userId],
  });
  if (evs.length === 0) return { notification_count: 0, highlight_count: 0 };
  const [rules, displayname, members] = await Promise.all([
    pushRules(ctx),
    ownDisplayname(ctx),
    roomMembers(ctx, roomId, maxStream),
  ]);
  const memberCount = members.filter((m) => m.membership === "join").length;
  let canNotifyRoom: Map<string, boolean> | undefined;
  let notify = 0;
  let highlight = 0;
  for (const e of evs) {
    if (e.redactedBy) continue;
    const ev = { ...e.pdu, room_id: roomId, sender: e.sender, type: e.type };
    const nctx: NotifyContext = { userId: ctx.userId, displayname, memberCount, senderCanNotifyRoom: false };
    if (mentionsRoom(ev)) {
      canNotifyRoom ??= await roomNotifiers(ctx, roomId);
      nctx.senderCanNotifyRoom = canNotifyRoom.get(e.sender) ?? false;
    }
    const r = evaluate(rules, ev, nctx);
    if (r.notify) notify++;
    if (r.highlight) highlight++;
  }
  if (evs.length === EVALUATE_MAX) {
    const oldest: StoredEvent = evs[evs.length - 1];
    notify += await store.countEvents(roomId, lo, oldest.stream - 1, ctx.userId, NOTIFYING_TYPES);
  }
  return { notification_count: notify, highlight_count: highlight };
}

function mentionsRoom(ev: Record<string, any>): boolean {
  const c = ev.content;
  return !!c && (c["m.mentions"]?.room === true || (typeof c.body === "string" && c.body.includes("@room")));
}

/** Which senders may notify the whole room: power level >= notifications.room (default 50). */
async function roomNotifiers(ctx: SyncCtx, roomId: string): Promise<Map<string, boolean>> {
  const pl = await ctx.hs.store.getCurrentStateEvent(roomId, "m.room.power_levels", "");
  const content = pl?.pdu.content ?? {};
  const need = Number(content.notifications?.room ?? 50);
  const users: Record<string, unknown> = content.users ?? {};
  const def = Number(content.users_default ?? 0);
  const out = new Map<string, boolean>();
  const members = ctx.members.get(roomId) ?? (await ctx.hs.store.getMembers(roomId, "join"));
  for (const m of members) out.set(m.userId, Number(users[m.userId] ?? def) >= need);
  // Without power levels, the room creator has 100 (spec: authorization rules).
  if (!pl) {
    const create = await ctx.hs.store.getCurrentStateEvent(roomId, "m.room.create", "");
    if (create) out.set(create.sender, true);
  }
  return out;
}
