/**
 * GET /sync (spec: data/api/client-server/sync.yaml): initial and incremental syncs over one snapshot of the
 * stream, and the long-poll that waits for the next change relevant to the user.
 */

import type { Homeserver } from "../../hs.ts";
import type { MembershipRow, RoomAt } from "../../store/types.ts";
import { resolveSyncFilter, roomAllowed } from "../filters.ts";
import type { Requester } from "../requester.ts";
import { isForgotten } from "../room-access.ts";
import { roomVisibilities } from "../visibility.ts";
import { newSyncCtx, prefetchMembers, roomMembers, type Snapshot, type SyncCtx, saveSentMembers } from "./context.ts";
import { e2eeSync } from "./e2ee.ts";
import { ephemeralEvents, receiptsByRoom, typingRooms } from "./ephemeral.ts";
import { accountData, presenceEvents, strippedStates } from "./extras.ts";
import { touchPresence } from "./presence.ts";
import { type RoomWindow, roomBodies } from "./rooms.ts";
import { threadUnreadCounts } from "./thread-unread.ts";
import { formatSyncToken, parseSyncToken, type SyncToken } from "./token.ts";
import type { JoinedRoom, SyncBasicEvent, SyncResponse, UnreadNotificationCounts } from "./types.ts";
import { unreadCounts } from "./unread.ts";

export interface SyncParams {
  since: string | null;
  filter: string | null;
  fullState: boolean;
  setPresence: string | null;
  /** Already capped by config sync.maxTimeoutMs. */
  timeoutMs: number;
  signal: AbortSignal;
}

export async function sync(hs: Homeserver, requester: Requester, p: SyncParams): Promise<SyncResponse> {
  const since = p.since ? parseSyncToken(p.since) : null;
  const filter = await resolveSyncFilter(hs, requester.userId, p.filter);
  try {
    await touchPresence(hs, requester.userId, p.setPresence);
  } catch (e) {
    hs.log.warn("presence update failed", { user: requester.userId, err: String(e) });
  }
  hs.metrics.activeSyncs++;
  try {
    const deadline = Date.now() + (p.fullState ? 0 : p.timeoutMs);
    for (;;) {
      const upto = hs.stream.current;
      const typingSerial = hs.typing.serial;
      // A token from beyond our stream (e.g. a wiped database) cannot be diffed against: sync from scratch.
      const base = since && since.stream <= upto ? since : null;
      const { body, empty } = await computeSync(hs, requester, {
        since: base,
        filter,
        fullState: p.fullState,
        upto,
        typingSerial,
      });
      if (!empty || !base || p.fullState || p.signal.aborted || Date.now() >= deadline) return body;
      while (hs.stream.current === upto && hs.typing.serial === typingSerial && !p.signal.aborted) {
        const left = deadline - Date.now();
        if (left <= 0) break;
        await hs.notifier.wait(left, p.signal);
      }
      if (p.signal.aborted) return body;
    }
  } finally {
    hs.metrics.activeSyncs--;
  }
}

/** One sync response at `upto`; `empty` says whether it carries nothing (long-polls keep waiting then). */
export async function computeSync(
  hs: Homeserver,
  requester: Requester,
  snap: Snapshot,
): Promise<{ body: SyncResponse; empty: boolean }> {
  const ctx = newSyncCtx(hs, requester, snap);
  const { store } = hs;
  const roomFilter = ctx.filter.room;
  const sinceStream = ctx.since?.stream ?? 0;
  const memberships = (await membershipsAt(ctx, await store.events.getRoomsForUser(ctx.userId))).filter((m) =>
    roomAllowed(roomFilter, m.roomId),
  );

  const joinedRows = memberships.filter((m) => m.membership === "join");
  const joinedIds = joinedRows.map((m) => m.roomId);
  const leftRows = memberships.filter(
    (m) =>
      (m.membership === "leave" || m.membership === "ban") &&
      (ctx.since ? m.stream > sinceStream : roomFilter?.include_leave === true || ctx.fullState),
  );
  const [maxStreams, ad, receipts, before] = await Promise.all([
    store.events.getRoomMaxStreams([...joinedIds, ...leftRows.map((m) => m.roomId)]),
    accountData(ctx),
    receiptsByRoom(ctx, joinedIds),
    // Was the user already joined at `since`? Only asked for rooms whose membership changed after it.
    membershipsAtStreams(
      ctx,
      ctx.since
        ? joinedRows.filter((m) => m.stream > sinceStream).map((m) => ({ roomId: m.roomId, stream: sinceStream }))
        : [],
    ),
  ]);
  const typing = typingRooms(ctx, joinedIds);
  const joinedBefore = new Map(before.map((b) => [b.roomId, b.membership]));
  // Every joined room's members are needed (summaries, unread counts, presence): one store call for the misses.
  await prefetchMembers(ctx, joinedIds, maxStreams);

  /** Joined rooms that may go into the response, with their body window when timeline/state are due. */
  const candidates: { m: MembershipRow; full: boolean; roomAd: SyncBasicEvent[]; w: RoomWindow | null }[] = [];
  for (const m of joinedRows) {
    const maxStream = maxStreams.get(m.roomId);
    const newlyJoined = ctx.since !== null && m.stream > sinceStream && joinedBefore.get(m.roomId) !== "join";
    const full = !ctx.since || ctx.fullState || newlyJoined;
    const roomAd = ad.rooms.get(m.roomId) ?? [];
    const hasEvents = maxStream !== undefined && maxStream > sinceStream;
    if (!full && !hasEvents && !typing.has(m.roomId) && !receipts.has(m.roomId) && roomAd.length === 0) continue;
    const w: RoomWindow | null =
      full || hasEvents
        ? {
            roomId: m.roomId,
            upto: ctx.upto,
            // A newly joined room is synced from the beginning, as far as history visibility lets the user see.
            after: ctx.since && !newlyJoined ? sinceStream : null,
            full,
            maxStream,
            wantSummary: full,
          }
        : null;
    candidates.push({ m, full, roomAd, w });
  }

  // Left rooms: forgotten ones are skipped; someone who was never joined (a rejected invite, a ban while
  // knocking) only sees their own membership event.
  const forgotten = await Promise.all(leftRows.map((m) => isForgotten(hs, ctx.userId, m)));
  const shownLeft = leftRows.filter((_, i) => !forgotten[i]);
  const priorLeft = await membershipsAtStreams(
    ctx,
    shownLeft.map((m) => ({ roomId: m.roomId, stream: m.stream - 1 })),
  );
  const leftWindows = shownLeft.map((m, i): RoomWindow => {
    const wasJoined = priorLeft[i].membership === "join";
    return {
      roomId: m.roomId,
      upto: m.stream,
      after: wasJoined ? (ctx.since ? sinceStream : null) : m.stream - 1,
      full: wasJoined && (!ctx.since || ctx.fullState),
      maxStream: maxStreams.get(m.roomId),
      wantSummary: false,
    };
  });

  // History visibility for every window it can narrow, in one store call: a window of a room the user stayed
  // joined to throughout (joined at or before its lower end) is visible whole (rule 2: membership join).
  const windows = [
    ...candidates.flatMap((c) => (c.w ? [{ w: c.w, m: c.m }] : [])),
    ...leftWindows.map((w, i) => ({ w, m: shownLeft[i] })),
  ];
  const narrowed = windows.filter(({ w, m }) => !(m.membership === "join" && w.after !== null && m.stream <= w.after));
  const vis = await roomVisibilities(
    hs,
    ctx.userId,
    narrowed.map(({ w }) => w.roomId),
    ctx.upto,
  );
  for (const { w } of narrowed) w.visible = vis.get(w.roomId)?.ranges;

  // All rooms' bodies in one batch, unread counts alongside (for candidates that may turn out empty, harmlessly).
  const joinWindows = candidates.flatMap((c) => (c.w ? [c.w] : []));
  const unreadRooms = candidates.map((c) => ({
    roomId: c.m.roomId,
    maxStream: maxStreams.get(c.m.roomId),
    membershipStream: c.m.stream,
  }));
  const [bodyList, unread, threadUnread] = await Promise.all([
    roomBodies(ctx, [...joinWindows, ...leftWindows]),
    unreadCounts(ctx, unreadRooms),
    ctx.filter.room?.timeline?.unread_thread_notifications === true
      ? threadUnreadCounts(ctx, unreadRooms)
      : { threads: new Map<string, Record<string, UnreadNotificationCounts>>(), inThreads: new Map() },
  ]);
  const bodies = new Map(joinWindows.map((w, i) => [w.roomId, bodyList[i]]));

  const join: SyncResponse["rooms"]["join"] = {};
  for (const { m, full, roomAd } of candidates) {
    const body = bodies.get(m.roomId) ?? null;
    const ephemeral = ephemeralEvents(ctx, m.roomId, typing.has(m.roomId), receipts.get(m.roomId));
    if (!full && !body?.changed && ephemeral.length === 0 && roomAd.length === 0) continue;
    const entry: JoinedRoom = {
      timeline: body?.timeline ?? { events: [], limited: false },
      state: body?.state ?? { events: [] },
      ephemeral: { events: ephemeral },
      account_data: { events: roomAd },
      unread_notifications: mainTimeline(unread.get(m.roomId), threadUnread.inThreads.get(m.roomId)),
    };
    if (body?.summary) entry.summary = body.summary;
    const threads = threadUnread.threads.get(m.roomId);
    if (threads) entry.unread_thread_notifications = threads;
    join[m.roomId] = entry;
  }

  const invite: SyncResponse["rooms"]["invite"] = {};
  const knock: SyncResponse["rooms"]["knock"] = {};
  const pending = memberships.filter(
    (m) =>
      (m.membership === "invite" || m.membership === "knock") &&
      !(ctx.since && m.stream <= sinceStream && !ctx.fullState),
  );
  const stripped = await strippedStates(ctx, pending);
  pending.forEach((m, i) => {
    if (m.membership === "invite") invite[m.roomId] = { invite_state: { events: stripped[i] } };
    else knock[m.roomId] = { knock_state: { events: stripped[i] } };
  });

  const leave: SyncResponse["rooms"]["leave"] = {};
  shownLeft.forEach((m, i) => {
    const body = bodyList[joinWindows.length + i];
    leave[m.roomId] = {
      timeline: body.timeline,
      state: body.state,
      account_data: { events: ad.rooms.get(m.roomId) ?? [] },
    };
  });

  const sharing = new Set<string>([ctx.userId]);
  for (const id of joinedIds)
    for (const r of await roomMembers(ctx, id, maxStreams.get(id))) if (r.membership === "join") sharing.add(r.userId);
  const presence = await presenceEvents(ctx, sharing);
  // to-device messages at or below the client's since token count as received and are deleted here.
  const e2ee = await e2eeSync(hs, requester, ctx.since ? sinceStream : null, ctx.upto, sharing);

  const next: SyncToken = { stream: ctx.upto, typing: ctx.typingSerial };
  saveSentMembers(ctx, next);
  const body: SyncResponse = {
    next_batch: formatSyncToken(next),
    rooms: { join, invite, leave, knock },
    presence: { events: presence },
    account_data: { events: ad.global },
    to_device: e2ee.to_device,
    device_lists: e2ee.device_lists,
    device_one_time_keys_count: e2ee.device_one_time_keys_count,
    device_unused_fallback_key_types: e2ee.device_unused_fallback_key_types,
  };
  const empty =
    Object.keys(join).length + Object.keys(invite).length + Object.keys(leave).length + Object.keys(knock).length ===
      0 &&
    presence.length === 0 &&
    ad.global.length === 0 &&
    e2ee.empty;
  return { body, empty };
}

/** The user's membership rows as of `upto`: rows written after the snapshot are looked up in the state at upto. */
async function membershipsAt(ctx: SyncCtx, rows: MembershipRow[]): Promise<MembershipRow[]> {
  const later = rows.filter((m) => m.stream > ctx.upto);
  const states = await ctx.hs.store.events.getStatesAt(
    later.map((m) => ({ roomId: m.roomId, stream: ctx.upto })),
    ["m.room.member"],
  );
  const asOf = new Map(later.map((m, i) => [m, states[i].find((e) => e.stateKey === ctx.userId)]));
  const out: MembershipRow[] = [];
  for (const m of rows) {
    if (m.stream <= ctx.upto) {
      out.push(m);
      continue;
    }
    const ev = asOf.get(m);
    const membership = ev?.pdu.content?.membership;
    if (ev && typeof membership === "string")
      out.push({ roomId: m.roomId, userId: ctx.userId, membership, eventId: ev.eventId, stream: ev.stream });
  }
  return out;
}

/** The user's membership in each room after every event with stream <= the point's stream (null if none). */
async function membershipsAtStreams(
  ctx: SyncCtx,
  points: RoomAt[],
): Promise<{ roomId: string; membership: string | null }[]> {
  const asked = points.filter((p) => p.stream > 0);
  const states = await ctx.hs.store.events.getStatesAt(asked, ["m.room.member"]);
  const found = new Map(
    asked.map((p, i) => {
      const m = states[i].find((e) => e.stateKey === ctx.userId)?.pdu.content?.membership;
      return [p, typeof m === "string" ? m : null];
    }),
  );
  return points.map((p) => ({ roomId: p.roomId, membership: found.get(p) ?? null }));
}

/**
 * The room's counts less what its threads added (spec: with unread_thread_notifications the room's counts are the
 * main timeline's). The room count gives up evaluating past a backlog, so the difference is floored at 0.
 */
function mainTimeline(
  room: UnreadNotificationCounts | undefined,
  inThreads: UnreadNotificationCounts | undefined,
): UnreadNotificationCounts | undefined {
  if (!room || !inThreads) return room;
  return {
    notification_count: Math.max(0, (room.notification_count ?? 0) - (inThreads.notification_count ?? 0)),
    highlight_count: Math.max(0, (room.highlight_count ?? 0) - (inThreads.highlight_count ?? 0)),
  };
}
