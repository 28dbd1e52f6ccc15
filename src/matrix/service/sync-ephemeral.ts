/** /sync: ephemeral events (m.typing, m.receipt) and unread notification counts of joined rooms. */
import type { ReceiptRow, StoredEvent } from "../store/types.ts";
import { eventAllowed, limitNewest, roomAllowed } from "./filters.ts";
import { evaluate, type NotifyContext } from "./push-rules.ts";
import {
  ownDisplayname,
  prefetchMembers,
  pushRules,
  pushRulesWithStamp,
  roomMembers,
  type SyncCtx,
} from "./sync-context.ts";

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

/** A joined room whose unread counts are wanted. */
export interface UnreadRoom {
  roomId: string;
  /** The room's newest event stream (getRoomMaxStreams). */
  maxStream: number | undefined;
  /** Stream of the user's membership event: counting starts there when they have no read receipt. */
  membershipStream: number;
}

/**
 * unread_notifications of many rooms: events after the user's read receipt (m.read or m.read.private,
 * unthreaded or main), or after their membership event when they have none, that the user's push rules make
 * notify/highlight. One store call per step for all rooms.
 */
export async function unreadCounts(ctx: SyncCtx, rooms: UnreadRoom[]): Promise<Map<string, Counts>> {
  const out = new Map<string, Counts>();
  if (rooms.length === 0) return out;
  const { store } = ctx.hs;
  const receiptIds = new Map<string, string[]>();
  for (const r of await store.getUserReceipts(
    ctx.userId,
    rooms.map((r) => r.roomId),
  )) {
    if ((r.type !== "m.read" && r.type !== "m.read.private") || (r.threadId !== null && r.threadId !== "main"))
      continue;
    const list = receiptIds.get(r.roomId);
    if (list) list.push(r.eventId);
    else receiptIds.set(r.roomId, [r.eventId]);
  }
  const allIds = [...receiptIds.values()].flat();
  const read = new Map((allIds.length ? await store.getEvents(allIds) : []).map((e) => [e.eventId, e]));

  const cache = countCaches.get(ctx.hs) ?? new Map<string, CachedCounts>();
  countCaches.set(ctx.hs, cache);
  let stamp: string | undefined;
  /** Rooms with anything unread: counted over (lo, upto] on top of what the cache already had. */
  const todo: { room: UnreadRoom; after: number; upto: number; lo: number; base: Counts }[] = [];
  for (const room of rooms) {
    let after = room.membershipStream;
    for (const id of receiptIds.get(room.roomId) ?? []) {
      const e = read.get(id);
      if (e && e.roomId === room.roomId) after = Math.max(after, e.stream);
    }
    const upto = Math.min(ctx.upto, room.maxStream ?? ctx.upto);
    if (after >= upto) {
      out.set(room.roomId, { notification_count: 0, highlight_count: 0 });
      continue;
    }
    if (stamp === undefined) {
      const [rules, displayname] = await Promise.all([pushRulesWithStamp(ctx), ownDisplayname(ctx)]);
      stamp = `${rules.stamp}|${displayname}`;
    }
    const hit = cache.get(`${ctx.userId}|${room.roomId}`);
    const cached = hit !== undefined && hit.after === after && hit.upto <= upto && hit.stamp === stamp;
    todo.push({
      room,
      after,
      upto,
      lo: cached ? hit.upto : after,
      base: cached
        ? { notification_count: hit.notification_count, highlight_count: hit.highlight_count }
        : { notification_count: 0, highlight_count: 0 },
    });
  }
  const ranges = todo.filter((t) => t.lo < t.upto);
  const more = await countRanges(
    ctx,
    ranges.map((t) => ({ room: t.room, lo: t.lo, hi: t.upto })),
  );
  const added = new Map(ranges.map((t, i) => [t, more[i]]));
  for (const t of todo) {
    const m = added.get(t);
    const counts = {
      notification_count: t.base.notification_count + (m?.notification_count ?? 0),
      highlight_count: t.base.highlight_count + (m?.highlight_count ?? 0),
    };
    out.set(t.room.roomId, counts);
    if (cache.size > 50_000) cache.clear();
    cache.set(`${ctx.userId}|${t.room.roomId}`, { ...counts, after: t.after, upto: t.upto, stamp: stamp as string });
  }
  return out;
}

/** Notifying/highlighting events with stream in (lo, hi] of each room, not sent by the user. */
async function countRanges(ctx: SyncCtx, ranges: { room: UnreadRoom; lo: number; hi: number }[]): Promise<Counts[]> {
  const out = ranges.map(() => ({ notification_count: 0, highlight_count: 0 }));
  if (ranges.length === 0) return out;
  const { store } = ctx.hs;
  const evss = await store.getLatestEventsPerRoom(
    ranges.map((r) => ({ roomId: r.room.roomId, before: r.hi + 1, after: r.lo })),
    EVALUATE_MAX,
    { types: NOTIFYING_TYPES, notSenders: [ctx.userId] },
  );
  const busy = ranges.filter((_, i) => evss[i].length > 0);
  if (busy.length === 0) return out;
  const [rules, displayname] = await Promise.all([
    pushRules(ctx),
    ownDisplayname(ctx),
    prefetchMembers(
      ctx,
      busy.map((r) => r.room.roomId),
      new Map(busy.flatMap((r) => (r.room.maxStream === undefined ? [] : [[r.room.roomId, r.room.maxStream]]))),
    ),
  ]);
  /** Older unread events beyond the evaluated ones, counted as notifying without a highlight. */
  const rest: { i: number; roomId: string; after: number; upto: number }[] = [];
  for (const [i, r] of ranges.entries()) {
    const evs = evss[i];
    if (evs.length === 0) continue;
    const roomId = r.room.roomId;
    const members = await roomMembers(ctx, roomId, r.room.maxStream);
    const memberCount = members.filter((m) => m.membership === "join").length;
    let canNotifyRoom: Map<string, boolean> | undefined;
    for (const e of evs) {
      if (e.redactedBy) continue;
      const ev = { ...e.pdu, room_id: roomId, sender: e.sender, type: e.type };
      const nctx: NotifyContext = { userId: ctx.userId, displayname, memberCount, senderCanNotifyRoom: false };
      if (mentionsRoom(ev)) {
        canNotifyRoom ??= await roomNotifiers(ctx, roomId);
        nctx.senderCanNotifyRoom = canNotifyRoom.get(e.sender) ?? false;
      }
      const res = evaluate(rules, ev, nctx);
      if (res.notify) out[i].notification_count++;
      if (res.highlight) out[i].highlight_count++;
    }
    if (evs.length === EVALUATE_MAX) {
      const oldest: StoredEvent = evs[evs.length - 1];
      rest.push({ i, roomId, after: r.lo, upto: oldest.stream - 1 });
    }
  }
  if (rest.length) {
    const n = await ctx.hs.store.countEventsPerRoom(rest, ctx.userId, NOTIFYING_TYPES);
    rest.forEach((x, j) => {
      out[x.i].notification_count += n[j];
    });
  }
  return out;
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
