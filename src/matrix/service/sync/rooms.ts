/** /sync: the timeline, state and summary of joined and left rooms (spec: sync.yaml, "Lazy-loading room members"). */

import type { ClientEvent, SyncEvent } from "../../events/types.ts";
import type { MembershipRow, RoomAt, StoredEvent } from "../../store/types.ts";
import { eventAllowed, pickFields, type RoomEventFilter } from "../filters.ts";
import { latestVisibleEvents, type StreamRange } from "../visibility.ts";
import { alreadySent, markMemberSent, memberStatesAt, prefetchMembers, roomMembers, type SyncCtx } from "./context.ts";
import { formatSyncToken } from "./token.ts";
import type { RoomSummary, Timeline } from "./types.ts";

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
  /** Always compute the summary (joined rooms on a full sync). */
  wantSummary: boolean;
  /** The positions history visibility lets the user see (visibility.ts); absent when all of the window is. */
  visible?: StreamRange[];
}

export interface RoomBody {
  timeline: Timeline;
  state: { events: SyncEvent[] };
  summary?: RoomSummary;
  /** True when timeline/state carry anything (empty incremental rooms are left out of the response). */
  changed: boolean;
}

/** One room's body before formatting. */
interface Draft {
  w: RoomWindow;
  /** Oldest first. */
  timeline: StoredEvent[];
  limited: boolean;
  /** State is "at the start of the timeline": everything up to this stream. */
  start: number;
  inTimeline: Set<string>;
  state: StoredEvent[];
  /** Members that changed in the gap between `since` and the timeline: always sent when lazy loading. */
  gapMembers: Set<string>;
  heroes: string[];
  summary?: RoomSummary;
}

const key = (e: StoredEvent) => `${e.type}\u0000${e.stateKey}`;

function hasEventRestrictions(f: RoomEventFilter | undefined): boolean {
  return !!f && !!(f.types || f.not_types || f.senders || f.not_senders || f.contains_url !== undefined);
}

/**
 * Timeline, state and summary of many rooms, with one store call per step for all of them (timelines, states,
 * members, lazy members, formatting) rather than per room. Results are in the order of `windows`.
 */
export async function roomBodies(ctx: SyncCtx, windows: RoomWindow[]): Promise<RoomBody[]> {
  if (windows.length === 0) return [];
  const { store } = ctx.hs;
  const tf = ctx.filter.room?.timeline;
  const limit = ctx.timelineLimit;
  const restricted = hasEventRestrictions(tf);
  const fetched = await latestVisibleEvents(
    ctx.hs,
    windows.map((w) => ({ roomId: w.roomId, before: w.upto + 1, after: w.after ?? undefined, visible: w.visible })),
    limit + 1,
    {
      types: tf?.types,
      notTypes: tf?.not_types,
      senders: tf?.senders,
      notSenders: tf?.not_senders,
      containsUrl: tf?.contains_url,
    },
  );
  const drafts: Draft[] = windows.map((w, i) => {
    const limited = fetched[i].length > limit;
    const timeline = (limited ? fetched[i].slice(0, limit) : fetched[i]).reverse();
    const first = timeline[0];
    const start = first ? first.stream - 1 : w.upto;
    const inTimeline = new Set(timeline.map((e) => e.eventId));
    return { w, timeline, limited, start, inTimeline, state: [], gapMembers: new Set(), heroes: [] };
  });

  // The states every room needs, fetched together: at the start (full), at `since` and at the end (incremental).
  const points: RoomAt[] = [];
  const at = (roomId: string, stream: number) => points.push({ roomId, stream }) - 1;
  const wanted = drafts.map((d) => {
    // State changes the timeline does not show (hidden by the filter, or sent where history visibility hides the
    // events from the user) go into the state, from the state at the end of the window, or the client's view of
    // the room's state would miss them.
    // So are the state-only events a partial-state room's resync wrote after the timeline's start.
    const filled = ctx.hs.partialState?.filledWithin(d.w.roomId, d.w.after ?? d.start, d.w.upto) === true;
    const end = restricted || hasHiddenStretch(d) || filled ? at(d.w.roomId, d.w.upto) : undefined;
    if (d.w.full) return { start: at(d.w.roomId, d.start), end };
    // State-only events (a partial-state room's members filled in by its resync, federation/partial-state.ts) are
    // in no timeline: an incremental window holding some sends them as state.
    const stateOnly = d.w.after !== null && d.timeline.length === 0 && (d.w.maxStream ?? 0) > d.w.after;
    if (stateOnly && end === undefined)
      return { start: at(d.w.roomId, d.w.upto), since: at(d.w.roomId, d.w.after ?? 0), end: undefined };
    if (d.limited || end !== undefined)
      return { start: at(d.w.roomId, d.start), since: at(d.w.roomId, d.w.after ?? 0), end };
    return null;
  });
  const states = await store.events.getStatesAt(points);
  const sf = ctx.filter.room?.state;
  drafts.forEach((d, i) => {
    const p = wanted[i];
    if (p) d.state = diffState(d, states[p.start], p.since === undefined ? null : states[p.since], p.end, states);
    d.state = d.state.filter((e) => eventAllowed(sf, e.type, e.sender) && !d.inTimeline.has(e.eventId));
    if (sf?.contains_url !== undefined)
      d.state = d.state.filter((e) => (typeof e.pdu.content?.url === "string") === sf.contains_url);
  });

  const needSummary = drafts.filter(
    (d) =>
      d.w.wantSummary ||
      ctx.lazyMembers ||
      d.w.full ||
      d.timeline.some((e) => e.type === "m.room.member") ||
      d.state.some((e) => e.type === "m.room.member"),
  );
  await prefetchMembers(
    ctx,
    needSummary.map((d) => d.w.roomId),
    new Map(needSummary.flatMap((d) => (d.w.maxStream === undefined ? [] : [[d.w.roomId, d.w.maxStream]]))),
  );
  for (const d of needSummary) d.summary = summaryOf(ctx, d, await roomMembers(ctx, d.w.roomId, d.w.maxStream));

  if (ctx.lazyMembers) await lazyMembers(ctx, drafts);

  // Every room's events formatted in one call (its redaction and replaced-state lookups are batched too).
  const ordered = drafts.map((d) => [...d.state].sort((a, b) => a.stream - b.stream));
  const formatted = await format(
    ctx,
    drafts.flatMap((d, i) => [...ordered[i], ...d.timeline]),
  );
  let pos = 0;
  return drafts.map((d, i) => {
    const stateEvents = formatted.slice(pos, pos + ordered[i].length);
    pos += ordered[i].length;
    const timelineEvents = formatted.slice(pos, pos + d.timeline.length);
    pos += d.timeline.length;
    if (ctx.sentMembers) {
      for (const e of [...ordered[i], ...d.timeline])
        if (e.type === "m.room.member" && e.stateKey !== null) markMemberSent(ctx, d.w.roomId, e.stateKey, e.eventId);
    }
    const tl: RoomBody["timeline"] = { events: timelineEvents, limited: d.limited };
    // prev_batch: a token for GET /messages (dir=b) that continues just before the first event shown.
    tl.prev_batch = formatSyncToken({ stream: Math.max(0, d.start), typing: ctx.typingSerial });
    return {
      timeline: tl,
      state: { events: stateEvents },
      summary: d.summary,
      changed: d.timeline.length > 0 || stateEvents.length > 0 || d.w.full,
    };
  });
}

/** Does history visibility hide part of the window after the timeline's start (a stretch the user was away)? */
function hasHiddenStretch(d: Draft): boolean {
  const v = d.w.visible;
  if (!v) return false;
  const lo = d.start + 1;
  return lo <= d.w.upto && !v.some((r) => r.lo <= lo && r.hi >= d.w.upto);
}

/**
 * The state to send: everything at the start (full), or what changed between `since` and the start of the
 * timeline, plus state changes inside the window that the timeline does not show (a filter or history visibility
 * hid them). A hidden change of a key the timeline changes earlier still ends up overridden by the client: the
 * spec's state-before-timeline model cannot say otherwise (MSC4222's state_after could).
 */
function diffState(
  d: Draft,
  atStart: StoredEvent[],
  atSince: StoredEvent[] | null,
  endIdx: number | undefined,
  states: StoredEvent[][],
): StoredEvent[] {
  let state = atStart;
  if (atSince !== null) {
    const before = new Map(atSince.map((e) => [key(e), e.eventId]));
    state = atStart.filter((e) => before.get(key(e)) !== e.eventId);
    for (const e of state) if (e.type === "m.room.member" && e.stateKey !== null) d.gapMembers.add(e.stateKey);
  }
  if (endIdx !== undefined) {
    const startIds = new Map(atStart.map((e) => [key(e), e.eventId]));
    const extra = states[endIdx].filter((e) => startIds.get(key(e)) !== e.eventId && !d.inTimeline.has(e.eventId));
    const byKey = new Map(state.map((e) => [key(e), e]));
    for (const e of extra) byKey.set(key(e), e);
    state = [...byKey.values()];
  }
  return state;
}

/** m.heroes and member counts (spec: sync.yaml RoomSummary); also fills d.heroes for lazy loading. */
function summaryOf(ctx: SyncCtx, d: Draft, members: MembershipRow[]): RoomSummary {
  const s = summaryFor(ctx.userId, members);
  d.heroes.push(...s["m.heroes"]);
  return s;
}

/** The room summary as `userId` sees it (heroes: up to 5 other members, oldest membership first). */
export function summaryFor(userId: string, members: MembershipRow[]): RoomSummary {
  let joined = 0;
  let invited = 0;
  const active: { userId: string; stream: number }[] = [];
  const gone: { userId: string; stream: number }[] = [];
  for (const m of members) {
    if (m.membership === "join") joined++;
    else if (m.membership === "invite") invited++;
    if (m.userId === userId) continue;
    (m.membership === "join" || m.membership === "invite" ? active : gone).push(m);
  }
  const pool = active.length ? active : gone;
  pool.sort((a, b) => a.stream - b.stream);
  const heroes = pool.slice(0, 5).map((m) => m.userId);
  return { "m.heroes": heroes, "m.joined_member_count": joined, "m.invited_member_count": invited };
}

/**
 * Lazy-loading: keep only the member events the client needs (senders of the timeline, the heroes, the syncing
 * user on full syncs, members changed in a gap) and drop those this device already has unless redundant ones
 * were asked for. Member events not in a room's state (unchanged since `since`) are read from the state at its
 * start, for all rooms in one store call.
 */
async function lazyMembers(ctx: SyncCtx, drafts: Draft[]): Promise<void> {
  const lookups: { d: Draft; missing: Set<string> }[] = [];
  for (const d of drafts) {
    const roomId = d.w.roomId;
    const needed = new Set<string>(d.timeline.map((e) => e.sender));
    for (const h of d.heroes) needed.add(h);
    if (d.w.full) needed.add(ctx.userId);
    // Members whose join is part of the timeline need nothing more.
    for (const e of d.timeline)
      if (e.type === "m.room.member" && e.stateKey !== null && e.stateKey === e.sender) needed.delete(e.sender);

    const out = d.state.filter((e) => e.type !== "m.room.member");
    const have = new Map<string, StoredEvent>();
    for (const e of d.state) if (e.type === "m.room.member" && e.stateKey !== null) have.set(e.stateKey, e);
    for (const [userId, e] of have) {
      if (d.gapMembers.has(userId)) out.push(e);
      else if (needed.has(userId) && !alreadySent(ctx, roomId, userId, e.eventId)) out.push(e);
    }
    d.state = out;
    // Needed members not covered by the state (incremental syncs): look them up unless the device has them already.
    const missing = [...needed].filter(
      (u) => !have.has(u) && !(ctx.sentMembers?.get(roomId)?.has(u) && !ctx.includeRedundantMembers),
    );
    if (missing.length) lookups.push({ d, missing: new Set(missing) });
  }
  if (lookups.length === 0) return;
  const found = await memberStatesAt(
    ctx,
    lookups.map(({ d }) => ({ roomId: d.w.roomId, stream: d.start })),
  );
  lookups.forEach(({ d, missing }, i) => {
    for (const e of found[i])
      if (e.stateKey !== null && missing.has(e.stateKey) && !alreadySent(ctx, d.w.roomId, e.stateKey, e.eventId))
        d.state.push(e);
  });
}

/** ClientEventWithoutRoomID, with the filter's event_fields applied. */
export async function format(ctx: SyncCtx, evs: StoredEvent[]): Promise<SyncEvent[]> {
  if (evs.length === 0) return [];
  const out = await ctx.hs.clientEvents(evs, ctx.requester);
  const fields = ctx.filter.event_fields;
  return out.map((e): SyncEvent => {
    delete (e as Partial<ClientEvent>).room_id;
    return fields ? pickFields(e, fields) : e;
  });
}
