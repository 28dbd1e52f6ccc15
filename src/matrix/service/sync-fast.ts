/**
 * The fast incremental sync of the WebSocket hub. When everything written after a connection's token is new
 * non-state room events (no state or membership change, redaction, account data, receipt, presence, to-device,
 * device-list or typing change), each room's new timeline slice is read and formatted ONCE and shared by every
 * connection with the same filter; a connection then adds only its own bits (transaction IDs of its device's
 * sends, unread counts, key counts, lazy-loading bookkeeping). The body equals computeSync's for the same
 * tokens (test/e2e/matrix-websocket-fast.test.ts); whenever that cannot be guaranteed cheaply, fastSync returns
 * null and the caller runs computeSync.
 */
import type { Homeserver } from "../hs.ts";
import type { Requester } from "../http/types.ts";
import type { MembershipRow, StoredEvent } from "../store/types.ts";
import { DEFAULT_TIMELINE_LIMIT, type Filter, MAX_TIMELINE_LIMIT, pickFields, roomAllowed } from "./filters.ts";
import { newSyncCtx, saveSentMembers } from "./sync-context.ts";
import { unreadCounts } from "./sync-ephemeral.ts";
import { format } from "./sync-rooms.ts";
import { formatSyncToken, type SyncToken } from "./sync-token.ts";

/** One room's new events after `after` up to `upto`, as every connection with this filter sees them. */
export interface RoomSlice {
  roomId: string;
  /** Oldest first. */
  events: StoredEvent[];
  /** Formatted without a requester (no transaction_id), filter's event_fields applied. Shared: never mutate. */
  formatted: Record<string, any>[];
  maxStream: number | undefined;
  members: Map<string, MembershipRow>;
  joined: number;
  invited: number;
  /** Members by membership stream (stable), for heroes: joined/invited ones, and the others. */
  active: MembershipRow[];
  gone: MembershipRow[];
}

/** The events a fast slice can carry: anything else changes state or earlier events. */
export function isPlainEvent(e: { type: string; stateKey: string | null }): boolean {
  return e.stateKey === null && e.type !== "m.room.redaction";
}

/**
 * Read and format one room's slice (after, upto] for `filter`; null when the fast path cannot produce what
 * /sync would (a timeline filter with event restrictions, a gap bigger than the timeline limit, state events).
 */
export async function roomSlice(
  hs: Homeserver,
  roomId: string,
  after: number,
  upto: number,
  filter: Filter,
  maxStream: number | undefined,
  members: MembershipRow[],
): Promise<RoomSlice | null> {
  const tf = filter.room?.timeline;
  const timelineLimit = Math.min(tf?.limit ?? DEFAULT_TIMELINE_LIMIT, MAX_TIMELINE_LIMIT);
  if (tf && (tf.types || tf.not_types || tf.senders || tf.not_senders || tf.contains_url !== undefined)) return null;
  const [fetched] = await hs.store.getLatestEventsPerRoom([{ roomId, before: upto + 1, after }], timelineLimit + 1);
  if (fetched.length > timelineLimit || fetched.some((e) => !isPlainEvent(e))) return null;
  const events = fetched.reverse();
  const fields = filter.event_fields;
  const formatted = (events.length ? await hs.clientEvents(events, null) : []).map((e) => {
    delete e.room_id;
    return fields ? pickFields(e, fields) : e;
  });
  let joined = 0;
  let invited = 0;
  const active: MembershipRow[] = [];
  const gone: MembershipRow[] = [];
  const byUser = new Map<string, MembershipRow>();
  for (const m of members) {
    byUser.set(m.userId, m);
    if (m.membership === "join") joined++;
    else if (m.membership === "invite") invited++;
    (m.membership === "join" || m.membership === "invite" ? active : gone).push(m);
  }
  active.sort((a, b) => a.stream - b.stream);
  gone.sort((a, b) => a.stream - b.stream);
  return { roomId, events, formatted, maxStream, members: byUser, joined, invited, active, gone };
}

/** Up to 5 heroes for `userId` (summaryFor in sync-rooms.ts over the shared, pre-sorted lists). */
function heroes(s: RoomSlice, userId: string): string[] {
  const pick = (rows: MembershipRow[]) => {
    const out: string[] = [];
    for (const m of rows) {
      if (m.userId === userId) continue;
      out.push(m.userId);
      if (out.length === 5) break;
    }
    return out;
  };
  const a = pick(s.active);
  return a.length ? a : pick(s.gone);
}

/**
 * One connection's frame from shared slices: every room the user is joined to with new events after `since`
 * (and no other change). Null: use computeSync.
 */
export async function fastSync(
  hs: Homeserver,
  requester: Requester,
  p: { since: SyncToken; filter: Filter; upto: number; typingSerial: number },
  slices: RoomSlice[],
): Promise<{ body: Record<string, any>; empty: boolean } | null> {
  const ctx = newSyncCtx(hs, requester, { ...p, fullState: false });
  if (ctx.includeRedundantMembers || p.since.typing !== p.typingSerial) return null;
  const { userId } = requester;
  const rooms: { s: RoomSlice; me: MembershipRow; heroes: string[] | null }[] = [];
  for (const s of slices) {
    const me = s.members.get(userId);
    if (me?.membership !== "join" || !roomAllowed(ctx.filter.room, s.roomId)) continue;
    // A membership written after the token (even past the snapshot) is not for the fast path to judge.
    if (me.stream > p.since.stream) return null;
    if (s.events.length === 0) continue;
    const h = ctx.lazyMembers ? heroes(s, userId) : null;
    if (ctx.lazyMembers) {
      // Lazy loading: every sender and hero's member event must be known to this device already.
      const sent = ctx.sentMembers?.get(s.roomId);
      for (const u of [...s.events.map((e) => e.sender), ...(h ?? [])]) if (!sent?.has(u)) return null;
    }
    rooms.push({ s, me, heroes: h });
  }
  const keys = hs.store.keys;
  const [unread, messages, counts, fallback] = await Promise.all([
    unreadCounts(
      ctx,
      rooms.map(({ s, me }) => ({ roomId: s.roomId, maxStream: s.maxStream, membershipStream: me.stream })),
    ),
    keys.takeToDeviceMessages(userId, requester.deviceId, p.since.stream, p.upto),
    keys.countOneTimeKeys(userId, requester.deviceId),
    keys.unusedFallbackKeyTypes(userId, requester.deviceId),
  ]);
  const join: Record<string, any> = {};
  for (const { s, heroes: h } of rooms) {
    const own = s.events.some((e) => e.sender === userId && e.txnId);
    const events = own ? await format(ctx, s.events) : s.formatted;
    const entry: Record<string, any> = {
      timeline: {
        events,
        limited: false,
        prev_batch: formatSyncToken({ stream: Math.max(0, s.events[0].stream - 1), typing: p.typingSerial }),
      },
      state: { events: [] },
      ephemeral: { events: [] },
      account_data: { events: [] },
      unread_notifications: unread.get(s.roomId),
    };
    if (h) entry.summary = { "m.heroes": h, "m.joined_member_count": s.joined, "m.invited_member_count": s.invited };
    join[s.roomId] = entry;
  }
  const next: SyncToken = { stream: p.upto, typing: p.typingSerial };
  saveSentMembers(ctx, next);
  const body: Record<string, any> = {
    next_batch: formatSyncToken(next),
    rooms: { join, invite: {}, leave: {}, knock: {} },
    presence: { events: [] },
    account_data: { events: [] },
    to_device: { events: messages.map((m) => ({ sender: m.sender, type: m.type, content: m.content })) },
    device_lists: { changed: [], left: [] },
    device_one_time_keys_count: { signed_curve25519: 0, ...counts },
    device_unused_fallback_key_types: fallback,
  };
  return { body, empty: rooms.length === 0 && messages.length === 0 };
}
