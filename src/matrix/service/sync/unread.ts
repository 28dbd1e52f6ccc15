/**
 * /sync: unread notification counts of joined rooms, for one sync or for many connections at once (the
 * WebSocket hub builds a wake-up's frames together): each step is one store call for every user and room, and
 * users with the same new events to count read them once.
 */

import { hasPrivilegedCreators, roomCreatorsOf } from "../../events/power-levels.ts";
import { field, isJsonObject } from "../../events/types.ts";
import type { MembershipRow, StoredEvent } from "../../store/types.ts";
import { evaluate, mergeRuleset, type NotifyContext, PUSH_RULES_TYPE } from "../push-rules.ts";
import {
  ownDisplayname,
  prefetchMembers,
  pushRules,
  pushRulesWithStamp,
  roomMembers,
  type SyncCtx,
} from "./context.ts";

const NOTIFYING_TYPES = ["m.room.message", "m.room.encrypted", "m.call.invite", "m.room.tombstone"];
/**
 * Unread events evaluated one by one against push rules, newest first; older ones beyond this are counted as
 * notifying without a highlight. Results are kept per (user, room) and extended as the room grows, so only a
 * cold start with a long unread backlog is approximate.
 */
const EVALUATE_MAX = 25;
/** A read shared by several users fetches this many more events, for each user's own ones it skips. */
const SHARED_EXTRA = 8;

export interface Counts {
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
  /**
   * Every event of the room in (after, upto], oldest first, when the caller has them already (the fast path's
   * shared slice): a count within that window then needs no read.
   */
  known?: { after: number; upto: number; events: StoredEvent[] };
}

/** One user's question: the counts of these rooms, within this sync's snapshot. */
export interface UnreadAsk {
  ctx: SyncCtx;
  rooms: UnreadRoom[];
}

/** A range of one ask still to count: events in (lo, hi] of the room. */
interface Range {
  ask: UnreadAsk;
  room: UnreadRoom;
  lo: number;
  hi: number;
}

/**
 * unread_notifications of many rooms: events after the user's read receipt (m.read or m.read.private,
 * unthreaded or main), or after their membership event when they have none, that the user's push rules make
 * notify/highlight. One store call per step for all rooms.
 */
export async function unreadCounts(ctx: SyncCtx, rooms: UnreadRoom[]): Promise<Map<string, Counts>> {
  return (await unreadCountsMany([{ ctx, rooms }]))[0];
}

/** unreadCounts of many users (one hub, one snapshot each), in the order asked: one store call per step. */
export async function unreadCountsMany(asks: UnreadAsk[]): Promise<Map<string, Counts>[]> {
  const out = asks.map(() => new Map<string, Counts>());
  const live = asks.filter((a) => a.rooms.length > 0);
  if (live.length === 0) return out;
  const { hs } = live[0].ctx;
  const { store } = hs;
  const userIds = [...new Set(live.map((a) => a.ctx.userId))];
  const roomIds = [...new Set(live.flatMap((a) => a.rooms.map((r) => r.roomId)))];
  /** Receipt event IDs by user and room. */
  const receiptIds = new Map<string, string[]>();
  for (const r of await store.ephemeral.getReceiptsOfUsers(userIds, roomIds)) {
    if ((r.type !== "m.read" && r.type !== "m.read.private") || (r.threadId !== null && r.threadId !== "main"))
      continue;
    const key = `${r.userId}|${r.roomId}`;
    const list = receiptIds.get(key);
    if (list) list.push(r.eventId);
    else receiptIds.set(key, [r.eventId]);
  }
  const allIds = [...new Set([...receiptIds.values()].flat())];
  const read = new Map((allIds.length ? await store.events.getEvents(allIds) : []).map((e) => [e.eventId, e]));

  // Where anything is unread, the counts depend on the push rules and display name: read them for all at once.
  const after = new Map<UnreadRoom, { after: number; upto: number }>();
  const needStamp = new Set<SyncCtx>();
  for (const a of live) {
    for (const room of a.rooms) {
      let from = room.membershipStream;
      for (const id of receiptIds.get(`${a.ctx.userId}|${room.roomId}`) ?? []) {
        const e = read.get(id);
        if (e && e.roomId === room.roomId) from = Math.max(from, e.stream);
      }
      const upto = Math.min(a.ctx.upto, room.maxStream ?? a.ctx.upto);
      after.set(room, { after: from, upto });
      if (from < upto) needStamp.add(a.ctx);
    }
  }
  await prefetchRulesAndNames([...needStamp]);

  const cache = countCaches.get(hs) ?? new Map<string, CachedCounts>();
  countCaches.set(hs, cache);
  const todo: {
    ask: UnreadAsk;
    i: number;
    room: UnreadRoom;
    after: number;
    upto: number;
    stamp: string;
    base: Counts;
    range: Range | null;
  }[] = [];
  for (const [i, a] of asks.entries()) {
    for (const room of a.rooms) {
      const w = after.get(room)!;
      if (w.after >= w.upto) {
        out[i].set(room.roomId, { notification_count: 0, highlight_count: 0 });
        continue;
      }
      const [rules, displayname] = await Promise.all([pushRulesWithStamp(a.ctx), ownDisplayname(a.ctx)]);
      const stamp = `${rules.stamp}|${displayname}`;
      const hit = cache.get(`${a.ctx.userId}|${room.roomId}`);
      const cached = hit !== undefined && hit.after === w.after && hit.upto <= w.upto && hit.stamp === stamp;
      const lo = cached ? hit.upto : w.after;
      todo.push({
        ask: a,
        i,
        room,
        after: w.after,
        upto: w.upto,
        stamp,
        base: cached
          ? { notification_count: hit.notification_count, highlight_count: hit.highlight_count }
          : { notification_count: 0, highlight_count: 0 },
        range: lo < w.upto ? { ask: a, room, lo, hi: w.upto } : null,
      });
    }
  }
  const ranges = todo.flatMap((t) => (t.range ? [t.range] : []));
  const more = await countRanges(ranges);
  const added = new Map(ranges.map((r, i) => [r, more[i]]));
  for (const t of todo) {
    const m = t.range ? added.get(t.range) : undefined;
    const counts = {
      notification_count: t.base.notification_count + (m?.notification_count ?? 0),
      highlight_count: t.base.highlight_count + (m?.highlight_count ?? 0),
    };
    out[t.i].set(t.room.roomId, counts);
    if (cache.size > 50_000) cache.clear();
    cache.set(`${t.ask.ctx.userId}|${t.room.roomId}`, { ...counts, after: t.after, upto: t.upto, stamp: t.stamp });
  }
  return out;
}

/** Fill each sync's push rules and display name memo (as pushRulesWithStamp / ownDisplayname would) at once. */
async function prefetchRulesAndNames(ctxs: SyncCtx[]): Promise<void> {
  const wantRules = ctxs.filter((c) => !c.rules);
  const wantNames = ctxs.filter((c) => !c.displayname);
  if (ctxs.length <= 1) return; // one sync: its memo reads them as usual
  const { store } = ctxs[0].hs;
  const [rules, users] = await Promise.all([
    store.accountData.getAccountDataOfUsers([...new Set(wantRules.map((c) => c.userId))], null, PUSH_RULES_TYPE),
    store.accounts.getUsers([...new Set(wantNames.map((c) => c.userId))]),
  ]);
  const ruleRows = new Map(rules.map((r) => [r.userId, r]));
  const names = new Map(users.map((u) => [u.userId, u.displayname ?? null]));
  for (const c of wantRules) {
    const row = ruleRows.get(c.userId);
    c.rules = Promise.resolve({ rules: mergeRuleset(c.userId, row?.content), stamp: row?.stream ?? 0 });
  }
  for (const c of wantNames) c.displayname = Promise.resolve(names.get(c.userId) ?? null);
}

/**
 * The newest EVALUATE_MAX notifying events in each range not sent by its user. Ranges of several users over the
 * same events share one read (with room for each user's own events); the others are one read per user.
 */
async function latestUnread(ranges: Range[]): Promise<StoredEvent[][]> {
  const out: StoredEvent[][] = ranges.map(() => []);
  if (ranges.length === 0) return out;
  const { store } = ranges[0].ask.ctx.hs;
  const groups = new Map<string, number[]>();
  for (const [i, r] of ranges.entries()) {
    const k = r.room.known;
    if (k && r.lo >= k.after && r.hi <= k.upto) {
      const user = r.ask.ctx.userId;
      const evs: StoredEvent[] = [];
      for (let j = k.events.length - 1; j >= 0 && evs.length < EVALUATE_MAX; j--) {
        const e = k.events[j];
        if (e.stream > r.lo && e.stream <= r.hi && e.sender !== user && NOTIFYING_TYPES.includes(e.type)) evs.push(e);
      }
      out[i] = evs;
      continue;
    }
    const key = `${r.room.roomId}|${r.lo}|${r.hi}`;
    const g = groups.get(key);
    if (g) g.push(i);
    else groups.set(key, [i]);
  }
  const shared = [...groups.values()].filter((g) => g.length > 1);
  const own = new Set([...groups.values()].filter((g) => g.length === 1).flat());
  const limit = EVALUATE_MAX + SHARED_EXTRA;
  const read = await store.events.getLatestEventsPerRoom(
    shared.map((g) => ({ roomId: ranges[g[0]].room.roomId, before: ranges[g[0]].hi + 1, after: ranges[g[0]].lo })),
    limit,
    { types: NOTIFYING_TYPES },
  );
  shared.forEach((g, j) => {
    for (const i of g) {
      const evs = read[j].filter((e) => e.sender !== ranges[i].ask.ctx.userId);
      // Exact when the read was complete, or still holds EVALUATE_MAX of others' events; else read alone.
      if (read[j].length < limit || evs.length >= EVALUATE_MAX) out[i] = evs.slice(0, EVALUATE_MAX);
      else own.add(i);
    }
  });
  const byUser = new Map<string, number[]>();
  for (const i of own) {
    const u = ranges[i].ask.ctx.userId;
    const list = byUser.get(u);
    if (list) list.push(i);
    else byUser.set(u, [i]);
  }
  await Promise.all(
    [...byUser].map(async ([userId, idx]) => {
      const evss = await store.events.getLatestEventsPerRoom(
        idx.map((i) => ({ roomId: ranges[i].room.roomId, before: ranges[i].hi + 1, after: ranges[i].lo })),
        EVALUATE_MAX,
        { types: NOTIFYING_TYPES, notSenders: [userId] },
      );
      idx.forEach((i, j) => {
        out[i] = evss[j];
      });
    }),
  );
  return out;
}

/** Notifying/highlighting events with stream in (lo, hi] of each range's room, not sent by its user. */
async function countRanges(ranges: Range[]): Promise<Counts[]> {
  const out = ranges.map(() => ({ notification_count: 0, highlight_count: 0 }));
  if (ranges.length === 0) return out;
  const evss = await latestUnread(ranges);
  // Members of the rooms with something to evaluate: one store call per sync for its misses (shared cache).
  const busy = new Map<SyncCtx, Range[]>();
  ranges.forEach((r, i) => {
    if (evss[i].length === 0) return;
    const list = busy.get(r.ask.ctx) ?? [];
    list.push(r);
    busy.set(r.ask.ctx, list);
  });
  for (const [ctx, list] of busy)
    await prefetchMembers(
      ctx,
      list.map((r) => r.room.roomId),
      new Map(list.flatMap((r) => (r.room.maxStream === undefined ? [] : [[r.room.roomId, r.room.maxStream]]))),
    );
  /** Older unread events beyond the evaluated ones, counted as notifying without a highlight. */
  const rest = new Map<SyncCtx, { i: number; roomId: string; after: number; upto: number }[]>();
  for (const [i, r] of ranges.entries()) {
    const evs = evss[i];
    if (evs.length === 0) continue;
    const { ctx } = r.ask;
    const roomId = r.room.roomId;
    const [rules, displayname] = await Promise.all([pushRules(ctx), ownDisplayname(ctx)]);
    const members = await roomMembers(ctx, roomId, r.room.maxStream);
    const memberCount = joinedCount(members);
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
      const list = rest.get(ctx) ?? [];
      list.push({ i, roomId, after: r.lo, upto: oldest.stream - 1 });
      rest.set(ctx, list);
    }
  }
  for (const [ctx, list] of rest) {
    const n = await ctx.hs.store.events.countEventsPerRoom(list, ctx.userId, NOTIFYING_TYPES);
    list.forEach((x, j) => {
      out[x.i].notification_count += n[j];
    });
  }
  return out;
}

/** Joined members of a member list, counted once per list (the member cache shares lists across syncs). */
const joinedCounts = new WeakMap<MembershipRow[], number>();
function joinedCount(members: MembershipRow[]): number {
  let n = joinedCounts.get(members);
  if (n === undefined) {
    n = 0;
    for (const m of members) if (m.membership === "join") n++;
    joinedCounts.set(members, n);
  }
  return n;
}

function mentionsRoom(ev: object): boolean {
  const c = field(ev, "content");
  return (
    isJsonObject(c) &&
    (field(c, "m.mentions", "room") === true || (typeof c.body === "string" && c.body.includes("@room")))
  );
}

/** Which senders may notify the whole room: power level >= notifications.room (default 50). */
async function roomNotifiers(ctx: SyncCtx, roomId: string): Promise<Map<string, boolean>> {
  const pl = await ctx.hs.store.events.getCurrentStateEvent(roomId, "m.room.power_levels", "");
  const content = pl?.pdu.content ?? {};
  const need = Number(content.notifications?.room ?? 50);
  const users: Record<string, unknown> = content.users ?? {};
  const def = Number(content.users_default ?? 0);
  const out = new Map<string, boolean>();
  const members = ctx.members.get(roomId) ?? (await ctx.hs.store.events.getMembers(roomId, "join"));
  for (const m of members) out.set(m.userId, Number(users[m.userId] ?? def) >= need);
  // Without power levels, the room creator has 100 (spec: authorization rules); from room version 12 the creators
  // always outrank everyone.
  const create = await ctx.hs.store.events.getCurrentStateEvent(roomId, "m.room.create", "");
  if (create && !pl) out.set(create.sender, true);
  const createLike = create ? { sender: create.sender, content: create.pdu.content ?? {} } : undefined;
  if (hasPrivilegedCreators(createLike)) for (const c of roomCreatorsOf(createLike)) out.set(c, true);
  return out;
}
