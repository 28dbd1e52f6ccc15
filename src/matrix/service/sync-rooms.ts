/** /sync: the timeline, state and summary of one joined or left room (spec: sync.yaml, "Lazy-loading room members"). */
import type { StoredEvent } from "../store/types.ts";
import { eventAllowed, pickFields, type RoomEventFilter } from "./filters.ts";
import { alreadySent, markMemberSent, roomMembers, type SyncCtx } from "./sync-context.ts";
import { formatSyncToken } from "./sync-token.ts";

export interface RoomWindow {
  roomId: string;
  /** Stream of the last event this sync may show (the leave event for left rooms). */
  upto: number;
  /** Exclusive lower bound of the timeline (since.stream), or null for a room synced from the beginning. */
  after: number | null;
  /** Send the full state at the start of the timeline (initial sync, full_state, newly joined). */
  full: boolean;
  /** The room's newest event stream, for the member cache. */
  maxStream: number | undefined;
}

export interface RoomBody {
  timeline: { events: Record<string, any>[]; limited: boolean; prev_batch?: string };
  state: { events: Record<string, any>[] };
  summary?: Record<string, any>;
  /** True when timeline/state carry anything (empty incremental rooms are left out of the response). */
  changed: boolean;
}

const key = (e: StoredEvent) => `${e.type}\u0000${e.stateKey}`;

function hasEventRestrictions(f: RoomEventFilter | undefined): boolean {
  return !!f && !!(f.types || f.not_types || f.senders || f.not_senders || f.contains_url !== undefined);
}

export async function roomBody(ctx: SyncCtx, w: RoomWindow, wantSummary: boolean): Promise<RoomBody> {
  const { hs } = ctx;
  const tf = ctx.filter.room?.timeline;
  const limit = ctx.timelineLimit;
  const fetched = await hs.store.getRoomEvents({
    roomId: w.roomId,
    dir: "b",
    from: w.upto + 1,
    to: w.after ?? undefined,
    limit: limit + 1,
    types: tf?.types,
    notTypes: tf?.not_types,
    senders: tf?.senders,
    notSenders: tf?.not_senders,
    containsUrl: tf?.contains_url,
  });
  const limited = fetched.length > limit;
  const timeline = (limited ? fetched.slice(0, limit) : fetched).reverse();
  const first = timeline[0];
  // State is "at the start of the timeline": everything before its first event.
  const start = first ? first.stream - 1 : w.upto;
  const inTimeline = new Set(timeline.map((e) => e.eventId));

  let state: StoredEvent[] = [];
  /** Members that changed in the gap between `since` and the timeline: always sent when lazy loading. */
  const gapMembers = new Set<string>();
  if (w.full) {
    state = await hs.store.getStateAt(w.roomId, start);
  } else if (limited || hasEventRestrictions(tf)) {
    const [atStart, atSince] = await Promise.all([
      hs.store.getStateAt(w.roomId, start),
      hs.store.getStateAt(w.roomId, w.after ?? 0),
    ]);
    const before = new Map(atSince.map((e) => [key(e), e.eventId]));
    state = atStart.filter((e) => before.get(key(e)) !== e.eventId);
    for (const e of state) if (e.type === "m.room.member" && e.stateKey !== null) gapMembers.add(e.stateKey);
    if (hasEventRestrictions(tf)) {
      // State changes inside the timeline window that the timeline filter hid must still reach the client.
      const atEnd = await hs.store.getStateAt(w.roomId, w.upto);
      const startIds = new Map(atStart.map((e) => [key(e), e.eventId]));
      const extra = atEnd.filter((e) => startIds.get(key(e)) !== e.eventId && !inTimeline.has(e.eventId));
      const byKey = new Map(state.map((e) => [key(e), e]));
      for (const e of extra) byKey.set(key(e), e);
      state = [...byKey.values()];
    }
  }

  const sf = ctx.filter.room?.state;
  state = state.filter((e) => eventAllowed(sf, e.type, e.sender) && !inTimeline.has(e.eventId));
  if (sf?.contains_url !== undefined)
    state = state.filter((e) => (typeof e.pdu.content?.url === "string") === sf.contains_url);

  let summary: Record<string, any> | undefined;
  const heroes: string[] = [];
  const membershipMoved =
    timeline.some((e) => e.type === "m.room.member") || state.some((e) => e.type === "m.room.member");
  if (wantSummary || ctx.lazyMembers || w.full || membershipMoved) {
    const members = await roomMembers(ctx, w.roomId, w.maxStream);
    let joined = 0;
    let invited = 0;
    const active: { userId: string; stream: number }[] = [];
    const gone: { userId: string; stream: number }[] = [];
    for (const m of members) {
      if (m.membership === "join") joined++;
      else if (m.membership === "invite") invited++;
      if (m.userId === ctx.userId) continue;
      (m.membership === "join" || m.membership === "invite" ? active : gone).push(m);
    }
    const pool = active.length ? active : gone;
    pool.sort((a, b) => a.stream - b.stream);
    for (const m of pool.slice(0, 5)) heroes.push(m.userId);
    summary = { "m.heroes": heroes, "m.joined_member_count": joined, "m.invited_member_count": invited };
  }

  if (ctx.lazyMembers) state = await lazyMembers(ctx, w, state, timeline, start, heroes, gapMembers);

  const ordered = [...state].sort((a, b) => a.stream - b.stream);
  const [stateEvents, timelineEvents] = await Promise.all([format(ctx, ordered), format(ctx, timeline)]);
  if (ctx.sentMembers) {
    for (const e of [...ordered, ...timeline])
      if (e.type === "m.room.member" && e.stateKey !== null) markMemberSent(ctx, w.roomId, e.stateKey, e.eventId);
  }
  const tl: RoomBody["timeline"] = { events: timelineEvents, limited };
  // prev_batch: a token for GET /messages (dir=b) that continues just before the first event shown.
  tl.prev_batch = formatSyncToken({ stream: Math.max(0, start), typing: ctx.typingSerial });
  return {
    timeline: tl,
    state: { events: stateEvents },
    summary,
    changed: timeline.length > 0 || stateEvents.length > 0 || w.full,
  };
}

/**
 * Lazy-loading: keep only the member events the client needs (senders of the timeline, the heroes, the syncing
 * user on full syncs, members changed in a gap) and drop those this device already has unless redundant ones
 * were asked for. Member events not in `state` (unchanged since `since`) are read from the state at the start.
 */
async function lazyMembers(
  ctx: SyncCtx,
  w: RoomWindow,
  state: StoredEvent[],
  timeline: StoredEvent[],
  start: number,
  heroes: string[],
  gapMembers: Set<string>,
): Promise<StoredEvent[]> {
  const needed = new Set<string>(timeline.map((e) => e.sender));
  for (const h of heroes) needed.add(h);
  if (w.full) needed.add(ctx.userId);
  // Members whose join is part of the timeline need nothing more.
  for (const e of timeline)
    if (e.type === "m.room.member" && e.stateKey !== null && e.stateKey === e.sender) needed.delete(e.sender);

  const out = state.filter((e) => e.type !== "m.room.member");
  const have = new Map<string, StoredEvent>();
  for (const e of state) if (e.type === "m.room.member" && e.stateKey !== null) have.set(e.stateKey, e);
  for (const [userId, e] of have) {
    if (gapMembers.has(userId)) out.push(e);
    else if (needed.has(userId) && !alreadySent(ctx, w.roomId, userId, e.eventId)) out.push(e);
  }
  // Needed members not covered by `state` (incremental syncs): look them up unless the device has them already.
  const missing = [...needed].filter(
    (u) => !have.has(u) && !(ctx.sentMembers?.get(w.roomId)?.has(u) && !ctx.includeRedundantMembers),
  );
  if (missing.length) {
    const members = await ctx.hs.store.getStateAt(w.roomId, start, ["m.room.member"]);
    const want = new Set(missing);
    for (const e of members)
      if (e.stateKey !== null && want.has(e.stateKey) && !alreadySent(ctx, w.roomId, e.stateKey, e.eventId))
        out.push(e);
  }
  return out;
}

/** ClientEventWithoutRoomID, with the filter's event_fields applied. */
export async function format(ctx: SyncCtx, evs: StoredEvent[]): Promise<Record<string, any>[]> {
  if (evs.length === 0) return [];
  const out = await ctx.hs.clientEvents(evs, ctx.requester);
  const fields = ctx.filter.event_fields;
  return out.map((e) => {
    delete e.room_id;
    return fields ? pickFields(e, fields) : e;
  });
}
