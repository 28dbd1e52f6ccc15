/**
 * The fast incremental sync of the WebSocket hub. When everything written after a connection's token is new
 * non-state room events, or tagged writes it cannot receive (no state or membership change, redaction, typing
 * change, nor any account data, receipt, presence, to-device or device-list change that reaches it), each room's
 * new timeline slice is read and formatted ONCE and shared by every connection with the same filter; a
 * connection then adds only its own bits (transaction IDs of its device's sends, unread counts, key counts,
 * lazy-loaded member events it lacks), read for every connection of a wake-up at once (one store call per
 * kind, fastSyncMany). The body equals computeSync's for the same tokens (test/e2e/matrix-websocket-fast.test.ts);
 * whenever that cannot be guaranteed cheaply, the connection's result is null and the caller runs computeSync.
 */

import type { ClientEvent, SyncEvent } from "../../events/types.ts";
import type { Homeserver } from "../../hs.ts";
import type { MembershipRow, StoredEvent } from "../../store/types.ts";
import { DEFAULT_TIMELINE_LIMIT, type Filter, MAX_TIMELINE_LIMIT, pickFields, roomAllowed } from "../filters.ts";
import type { Requester } from "../requester.ts";
import { alreadySent, markMemberSent, memberStatesAt, newSyncCtx, type SyncCtx, saveSentMembers } from "./context.ts";
import { format } from "./rooms.ts";
import { formatSyncToken, type SyncToken } from "./token.ts";
import type { JoinedRoom, SyncResponse, ToDeviceEvent } from "./types.ts";
import { type Counts, type UnreadRoom, unreadCountsMany } from "./unread.ts";

/** One room's new events after `after` up to `upto`, as every connection with this filter sees them. */
export interface RoomSlice {
  roomId: string;
  /** Every event of the room in (after, upto], oldest first. */
  after: number;
  events: StoredEvent[];
  /** Formatted without a requester (no transaction_id), filter's event_fields applied. Shared: never mutate. */
  formatted: SyncEvent[];
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
  const [fetched] = await hs.store.events.getLatestEventsPerRoom(
    [{ roomId, before: upto + 1, after }],
    timelineLimit + 1,
  );
  if (fetched.length > timelineLimit || fetched.some((e) => !isPlainEvent(e))) return null;
  const events = fetched.reverse();
  const fields = filter.event_fields;
  const formatted = (events.length ? await hs.clientEvents(events, null) : []).map((e): SyncEvent => {
    delete (e as Partial<ClientEvent>).room_id;
    return fields ? pickFields(e, fields) : e;
  });
  // A thread root whose replies came in the same slice: its summary says whether *this* user took part.
  if (formatted.some((e) => (e.unsigned?.["m.relations"] as Record<string, unknown> | undefined)?.["m.thread"]))
    return null;
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
  return { roomId, after, events, formatted, maxStream, members: byUser, joined, invited, active, gone };
}

/** Up to 5 heroes for `userId` (summaryFor in rooms.ts over the shared, pre-sorted lists). */
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

/** One connection's part of a fast wake-up. */
export interface FastAsk {
  requester: Requester;
  since: SyncToken;
  filter: Filter;
  upto: number;
  typingSerial: number;
  /** The shared slices of the rooms with new events (StreamChanges.slices). */
  slices: RoomSlice[];
  /**
   * Whether to-device messages at or below `since` may still be stored for the device (its last frame carried
   * some, or nobody knows): they are deleted as /sync does. Otherwise there is nothing to read: messages after
   * `since` are tagged writes that send the connection to the full computation.
   */
  toDeviceHeld: boolean;
  /** Member-state reads shared by every connection of the snapshot (SyncCtx.shared). */
  shared?: Map<string, Promise<StoredEvent[]>>;
}

/**
 * A connection's frame. `shareKey`: set when the body depends only on what the key says (no transaction IDs
 * of the device's own sends, no to-device messages): connections of one fastSyncMany call with the same key
 * get the same body object, so the caller can serialise it once for all of them.
 */
export type FastResult = { body: SyncResponse; empty: boolean; shareKey?: string } | null;

/** Slices numbered for share keys (a slice is one room's events for one `since` and filter). */
const sliceIds = new WeakMap<RoomSlice, number>();
let nextSliceId = 0;
function sliceId(s: RoomSlice): number {
  let id = sliceIds.get(s);
  if (id === undefined) {
    id = nextSliceId++;
    sliceIds.set(s, id);
  }
  return id;
}

interface PreparedRoom {
  s: RoomSlice;
  me: MembershipRow;
  heroes: string[] | null;
  /** Lazy loading: senders and heroes whose member event this device lacks (null: none). */
  missing: Set<string> | null;
  /** Their member events, as /sync's lazy loading adds them to the room's state (stream order). */
  state: StoredEvent[];
  stateFormatted: SyncEvent[];
}

interface Prepared {
  ask: FastAsk;
  ctx: SyncCtx;
  rooms: PreparedRoom[];
}

/** The rooms of one connection's frame, or null when only computeSync can build it. */
function prepare(hs: Homeserver, ask: FastAsk): Prepared | null {
  const ctx = newSyncCtx(hs, ask.requester, { ...ask, fullState: false });
  if (ctx.includeRedundantMembers || ask.since.typing !== ask.typingSerial) return null;
  // Per-thread unread counts (and the main timeline's counts without them) are the full computation's.
  if (ctx.filter.room?.timeline?.unread_thread_notifications === true) return null;
  const { userId } = ask.requester;
  const rooms: PreparedRoom[] = [];
  for (const s of ask.slices) {
    const me = s.members.get(userId);
    if (me?.membership !== "join" || !roomAllowed(ctx.filter.room, s.roomId)) continue;
    // A membership written after the token (even past the snapshot) is not for the fast path to judge. Otherwise
    // the user was joined before every event of the slice, and a slice holds no state events (no visibility
    // change): history visibility (visibility.ts, rule 2) shows them all, so the slice needs no filtering.
    if (me.stream > ask.since.stream) return null;
    if (s.events.length === 0) continue;
    const h = ctx.lazyMembers ? heroes(s, userId) : null;
    let missing: Set<string> | null = null;
    if (ctx.lazyMembers) {
      // Lazy loading: the member events of senders and heroes this device does not have yet go into the state.
      const sent = ctx.sentMembers?.get(s.roomId);
      const lacking = [...s.events.map((e) => e.sender), ...(h ?? [])].filter((u) => !sent?.has(u));
      if (lacking.length) missing = new Set(lacking);
    }
    rooms.push({ s, me, heroes: h, missing, state: [], stateFormatted: [] });
  }
  return { ask, ctx, rooms };
}

/**
 * Frames of many connections from shared slices, in the order asked: every room the user is joined to with
 * new events after `since` (and no other change). Null for a connection: use computeSync for it. The per-user
 * reads (unread counts, key counts) are one store call per kind for all of them.
 */
export async function fastSyncMany(hs: Homeserver, asks: FastAsk[]): Promise<FastResult[]> {
  const prepared = asks.map((a) => prepare(hs, a));
  const live = prepared.filter((p): p is Prepared => p !== null);
  await lazyMemberStates(live);
  const devices = live.map((p) => ({ userId: p.ask.requester.userId, deviceId: p.ask.requester.deviceId }));
  const unreadRooms = (p: Prepared): UnreadRoom[] =>
    p.rooms.map(({ s, me }) => ({
      roomId: s.roomId,
      maxStream: s.maxStream,
      membershipStream: me.stream,
      known: { after: s.after, upto: p.ask.upto, events: s.events },
    }));
  const keys = hs.store.keys;
  const [unread, counts, fallback, messages] = await Promise.all([
    unreadCountsMany(live.map((p) => ({ ctx: p.ctx, rooms: unreadRooms(p) }))),
    keys.countOneTimeKeysMany(devices),
    keys.unusedFallbackKeyTypesMany(devices),
    Promise.all(
      live.map((p, i) =>
        p.ask.toDeviceHeld
          ? keys.takeToDeviceMessages(devices[i].userId, devices[i].deviceId, p.ask.since.stream, p.ask.upto)
          : [],
      ),
    ),
  ]);
  const bodies = new Map<Prepared, FastResult>();
  /** Frames that depend only on their key: most members of a room get the same one. */
  const shared = new Map<string, FastResult>();
  for (const [i, p] of live.entries()) {
    const userId = p.ask.requester.userId;
    const own = p.rooms.some(({ s }) => s.events.some((e) => e.sender === userId && e.txnId));
    if (own || messages[i].length > 0) {
      bodies.set(p, await frame(p, unread[i], counts[i], fallback[i], messages[i]));
      continue;
    }
    const parts = p.rooms.map(({ s, heroes: h, state }) => {
      const u = unread[i].get(s.roomId);
      const members = state.map((e) => e.eventId).join(" ");
      return `${sliceId(s)}:${u?.notification_count},${u?.highlight_count}:${h?.join(" ") ?? "-"}:${members}`;
    });
    const key = `${p.ask.upto}_${p.ask.typingSerial}|${parts.join(";")}|${JSON.stringify(counts[i])}|${fallback[i].join(" ")}`;
    let hit = shared.get(key);
    if (hit) saveSentMembers(p.ctx, { stream: p.ask.upto, typing: p.ask.typingSerial });
    else {
      hit = await frame(p, unread[i], counts[i], fallback[i], messages[i]);
      hit!.shareKey = key;
      shared.set(key, hit);
    }
    bodies.set(p, hit);
  }
  return prepared.map((p) => (p ? (bodies.get(p) ?? null) : null));
}

async function frame(
  p: Prepared,
  unread: Map<string, Counts>,
  counts: Record<string, number>,
  fallback: string[],
  messages: ToDeviceEvent[],
): Promise<FastResult> {
  const { ctx, ask } = p;
  const userId = ask.requester.userId;
  const join: SyncResponse["rooms"]["join"] = {};
  for (const { s, heroes: h, stateFormatted } of p.rooms) {
    const own = s.events.some((e) => e.sender === userId && e.txnId);
    const events = own ? await format(ctx, s.events) : s.formatted;
    const entry: JoinedRoom = {
      timeline: {
        events,
        limited: false,
        prev_batch: formatSyncToken({ stream: Math.max(0, s.events[0].stream - 1), typing: ask.typingSerial }),
      },
      state: { events: stateFormatted },
      ephemeral: { events: [] },
      account_data: { events: [] },
      unread_notifications: unread.get(s.roomId),
    };
    if (h) entry.summary = { "m.heroes": h, "m.joined_member_count": s.joined, "m.invited_member_count": s.invited };
    join[s.roomId] = entry;
  }
  const next: SyncToken = { stream: ask.upto, typing: ask.typingSerial };
  saveSentMembers(ctx, next);
  const body: SyncResponse = {
    next_batch: formatSyncToken(next),
    rooms: { join, invite: {}, leave: {}, knock: {} },
    presence: { events: [] },
    account_data: { events: [] },
    to_device: { events: messages.map((m) => ({ sender: m.sender, type: m.type, content: m.content })) },
    device_lists: { changed: [], left: [] },
    device_one_time_keys_count: { signed_curve25519: 0, ...counts },
    device_unused_fallback_key_types: fallback,
  };
  return { body, empty: p.rooms.length === 0 && messages.length === 0 };
}

/**
 * Lazy loading: read the member events the devices lack at each room's timeline start (through the snapshot's
 * shared reads: all connections of a room need the same state) and format them once per set of events, as
 * computeSync's lazy loading would add them; they count as sent to the device from this frame on.
 */
async function lazyMemberStates(live: Prepared[]): Promise<void> {
  const todo = live.flatMap((p) => p.rooms.filter((r) => r.missing).map((r) => ({ p, r })));
  if (todo.length === 0) return;
  const formats = new Map<string, Promise<SyncEvent[]>>();
  for (const { p, r } of todo) {
    const roomId = r.s.roomId;
    const [found] = await memberStatesAt(p.ctx, [{ roomId, stream: r.s.events[0].stream - 1 }]);
    r.state = found
      .filter(
        (e) => e.stateKey !== null && r.missing!.has(e.stateKey) && !alreadySent(p.ctx, roomId, e.stateKey, e.eventId),
      )
      .sort((a, b) => a.stream - b.stream);
    if (r.state.length === 0) continue;
    // Formatting depends on the requester only through transaction IDs of its own sends.
    const own = r.state.some((e) => e.txnId && e.sender === p.ctx.userId);
    const key = own ? null : r.state.map((e) => e.eventId).join(" ");
    let f = key === null ? undefined : formats.get(key);
    if (!f) {
      f = format(p.ctx, r.state);
      if (key !== null) formats.set(key, f);
    }
    r.stateFormatted = await f;
    for (const e of r.state) markMemberSent(p.ctx, roomId, e.stateKey!, e.eventId);
  }
}
