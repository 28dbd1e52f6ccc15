/**
 * GET /sync (spec: data/api/client-server/sync.yaml): initial and incremental syncs over one snapshot of the
 * stream, and the long-poll that waits for the next change relevant to the user.
 */

import type { Homeserver } from "../hs.ts";
import type { Requester } from "../http/types.ts";
import type { MembershipRow } from "../store/types.ts";
import { type Filter, resolveSyncFilter, roomAllowed } from "./filters.ts";
import { isForgotten } from "./room-access.ts";
import { newSyncCtx, roomMembers, type SyncCtx, saveSentMembers } from "./sync-context.ts";
import { ephemeralEvents, receiptsByRoom, typingRooms, unreadCounts } from "./sync-ephemeral.ts";
import { accountData, presenceEvents, strippedState } from "./sync-extras.ts";
import { touchPresence } from "./sync-presence.ts";
import { type RoomWindow, roomBody } from "./sync-rooms.ts";
import { formatSyncToken, parseSyncToken, type SyncToken } from "./sync-token.ts";

export interface SyncParams {
  since: string | null;
  filter: string | null;
  fullState: boolean;
  setPresence: string | null;
  /** Already capped by config sync.maxTimeoutMs. */
  timeoutMs: number;
  signal: AbortSignal;
}

export async function sync(hs: Homeserver, requester: Requester, p: SyncParams): Promise<Record<string, any>> {
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

interface Snapshot {
  since: SyncToken | null;
  filter: Filter;
  fullState: boolean;
  upto: number;
  typingSerial: number;
}

/** One sync response at `upto`; `empty` says whether it carries nothing (long-polls keep waiting then). */
export async function computeSync(
  hs: Homeserver,
  requester: Requester,
  snap: Snapshot,
): Promise<{ body: Record<string, any>; empty: boolean }> {
  const ctx = newSyncCtx(hs, requester, snap);
  const { store } = hs;
  const roomFilter = ctx.filter.room;
  const sinceStream = ctx.since?.stream ?? 0;
  const memberships = (await membershipsAt(ctx, await store.getRoomsForUser(ctx.userId))).filter((m) =>
    roomAllowed(roomFilter, m.roomId),
  );

  const joinedRows = memberships.filter((m) => m.membership === "join");
  const joinedIds = joinedRows.map((m) => m.roomId);
  const leftRows = memberships.filter(
    (m) =>
      (m.membership === "leave" || m.membership === "ban") &&
      (ctx.since ? m.stream > sinceStream : roomFilter?.include_leave === true || ctx.fullState),
  );
  const [maxStreams, ad, receipts] = await Promise.all([
    store.getRoomMaxStreams([...joinedIds, ...leftRows.map((m) => m.roomId)]),
    accountData(ctx),
    receiptsByRoom(ctx, joinedIds),
  ]);
  const typing = typingRooms(ctx, joinedIds);

  const join: Record<string, any> = {};
  await Promise.all(
    joinedRows.map(async (m) => {
      const maxStream = maxStreams.get(m.roomId);
      const newlyJoined =
        ctx.since !== null && m.stream > sinceStream && (await membershipAt(ctx, m.roomId, sinceStream)) !== "join";
      const full = !ctx.since || ctx.fullState || newlyJoined;
      const roomAd = ad.rooms.get(m.roomId) ?? [];
      const hasEvents = maxStream !== undefined && maxStream > sinceStream;
      if (!full && !hasEvents && !typing.has(m.roomId) && !receipts.has(m.roomId) && roomAd.length === 0) return;
      const w: RoomWindow = {
        roomId: m.roomId,
        upto: ctx.upto,
        after: ctx.since ? sinceStream : null,
        full,
        maxStream,
      };
      const body = full || hasEvents ? await roomBody(ctx, w, full) : null;
      const ephemeral = ephemeralEvents(ctx, m.roomId, typing.has(m.roomId), receipts.get(m.roomId));
      if (!full && !body?.changed && ephemeral.length === 0 && roomAd.length === 0) return;
      const entry: Record<string, any> = {
        timeline: body?.timeline ?? { events: [], limited: false },
        state: body?.state ?? { events: [] },
        ephemeral: { events: ephemeral },
        account_data: { events: roomAd },
        unread_notifications: await unreadCounts(ctx, m.roomId, maxStream, m.stream),
      };
      if (body?.summary) entry.summary = body.summary;
      join[m.roomId] = entry;
    }),
  );

  const invite: Record<string, any> = {};
  const knock: Record<string, any> = {};
  for (const m of memberships) {
    if (
      (m.membership !== "invite" && m.membership !== "knock") ||
      (ctx.since && m.stream <= sinceStream && !ctx.fullState)
    )
      continue;
    const events = await strippedState(ctx, m.roomId, m.eventId);
    if (m.membership === "invite") invite[m.roomId] = { invite_state: { events } };
    else knock[m.roomId] = { knock_state: { events } };
  }

  const leave: Record<string, any> = {};
  await Promise.all(
    leftRows.map(async (m) => {
      if (await isForgotten(hs, ctx.userId, m)) return;
      // Someone who was never joined (a rejected invite, a ban while knocking) only sees their own membership event.
      const wasJoined = (await membershipAt(ctx, m.roomId, m.stream - 1)) === "join";
      const after = wasJoined ? (ctx.since ? sinceStream : null) : m.stream - 1;
      const w: RoomWindow = {
        roomId: m.roomId,
        upto: m.stream,
        after,
        full: wasJoined && (!ctx.since || ctx.fullState),
        maxStream: maxStreams.get(m.roomId),
      };
      const body = await roomBody(ctx, w, false);
      leave[m.roomId] = {
        timeline: body.timeline,
        state: body.state,
        account_data: { events: ad.rooms.get(m.roomId) ?? [] },
      };
    }),
  );

  const sharing = new Set<string>([ctx.userId]);
  await Promise.all(
    joinedIds.map(async (id) => {
      for (const r of await roomMembers(ctx, id, maxStreams.get(id)))
        if (r.membership === "join") sharing.add(r.userId);
    }),
  );
  const presence = await presenceEvents(ctx, sharing);

  const next: SyncToken = { stream: ctx.upto, typing: ctx.typingSerial };
  saveSentMembers(ctx, next);
  const body: Record<string, any> = {
    next_batch: formatSyncToken(next),
    rooms: { join, invite, leave, knock },
    presence: { events: presence },
    account_data: { events: ad.global },
    to_device: { events: [] },
    device_lists: { changed: [], left: [] },
    device_one_time_keys_count: {},
  };
  const empty =
    Object.keys(join).length + Object.keys(invite).length + Object.keys(leave).length + Object.keys(knock).length ===
      0 &&
    presence.length === 0 &&
    ad.global.length === 0;
  return { body, empty };
}

/** The user's membership rows as of `upto`: rows written after the snapshot are looked up in the state at upto. */
async function membershipsAt(ctx: SyncCtx, rows: MembershipRow[]): Promise<MembershipRow[]> {
  const out: MembershipRow[] = [];
  for (const m of rows) {
    if (m.stream <= ctx.upto) {
      out.push(m);
      continue;
    }
    const state = await ctx.hs.store.getStateAt(m.roomId, ctx.upto, ["m.room.member"]);
    const ev = state.find((e) => e.stateKey === ctx.userId);
    const membership = ev?.pdu.content?.membership;
    if (ev && typeof membership === "string")
      out.push({ roomId: m.roomId, userId: ctx.userId, membership, eventId: ev.eventId, stream: ev.stream });
  }
  return out;
}

/** The user's membership in a room after every event with stream <= `stream`, or null if none. */
async function membershipAt(ctx: SyncCtx, roomId: string, stream: number): Promise<string | null> {
  if (stream <= 0) return null;
  const state = await ctx.hs.store.getStateAt(roomId, stream, ["m.room.member"]);
  const m = state.find((e) => e.stateKey === ctx.userId)?.pdu.content?.membership;
  return typeof m === "string" ? m : null;
}
