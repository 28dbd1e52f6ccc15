/**
 * The deprecated pre-/sync reads (spec old_sync.yaml, peeking_events.yaml), kept simple on top of the room reads as
 * Synapse still serves them: `GET /events` (the user's rooms, or one world-readable room to peek into, from a sync
 * token, long-polling like /sync), `GET /initialSync` and `GET /events/{eventId}`. Every event passes through
 * history visibility (service/visibility.ts): a user gets nothing from before they could see a room, nothing of a
 * room they are not in, and peeks only into rooms that are world_readable now.
 */
import { AmiError } from "../../core/errors.ts";
import type { ClientEvent } from "../events/types.ts";
import type { Homeserver } from "../hs.ts";
import type { StoredEvent } from "../store/types.ts";
import type { Requester } from "./requester.ts";
import { requireRoomId } from "./room-access.ts";
import { topoToken } from "./room-query.ts";
import { newSyncCtx } from "./sync/context.ts";
import { accountData, presenceEvents } from "./sync/extras.ts";
import { formatSyncToken, parseSyncToken } from "./sync/token.ts";
import type { SyncBasicEvent } from "./sync/types.ts";
import {
  isVisible,
  latestVisibleEvents,
  MAX_STREAM,
  type RoomVisibility,
  readableRoom,
  readableState,
  roomVisibilities,
  type StreamRange,
  stateBound,
  visibleRoomEvents,
} from "./visibility.ts";

/** Most events one /events answer carries (the rest come with the next `from`). */
export const EVENTS_PAGE = 100;

export interface EventsParams {
  from: string | null;
  timeoutMs: number;
  /** Peek into this room (must be world_readable, or one the user may read). */
  roomId: string | null;
  signal: AbortSignal;
}

export interface EventsPage {
  start: string;
  end: string;
  chunk: ClientEvent[];
}

/** A room to stream and the visible positions in it, up to `until` (a leave ends what a user sees of a room). */
interface Source {
  roomId: string;
  ranges: StreamRange[];
  until: number;
}

/** The rooms /events streams for the user: joined and invited ones, and those left after `since`. */
async function ownSources(hs: Homeserver, userId: string, since: number, upto: number): Promise<Source[]> {
  const rows = await hs.store.events.getRoomsForUser(userId);
  const vis = await roomVisibilities(
    hs,
    userId,
    rows.map((m) => m.roomId),
    upto,
  );
  const out: Source[] = [];
  for (const v of vis.values()) {
    const inside = v.membership === "join" || v.membership === "invite";
    if (!inside && v.membershipStream <= since) continue;
    out.push({ roomId: v.roomId, ranges: v.ranges, until: inside ? upto : Math.min(upto, v.membershipStream) });
  }
  return out;
}

/** The room a peek reads: M_FORBIDDEN unless it is world_readable now or the user may read it anyway. */
async function peekSource(hs: Homeserver, userId: string, roomId: string, upto: number): Promise<Source> {
  const v = await readableRoom(hs, requireRoomId(roomId), userId);
  if (v.current !== "world_readable" && v.membership !== "join")
    throw new AmiError("M_FORBIDDEN", `Room ${roomId} is not world-readable`);
  return { roomId, ranges: v.ranges, until: Math.min(upto, stateBound(v)) };
}

/** Visible events after `since`, oldest first, at most EVENTS_PAGE; `end` is the last stream they cover. */
async function eventsAfter(hs: Homeserver, sources: Source[], since: number, upto: number) {
  const perRoom = await Promise.all(
    sources.map((s) =>
      s.until <= since
        ? []
        : visibleRoomEvents(hs, s.ranges, {
            roomId: s.roomId,
            dir: "f",
            from: since,
            to: s.until + 1,
            limit: EVENTS_PAGE,
          }),
    ),
  );
  // A room that filled its page may have more: the answer ends at the last event of the shortest such page, and at
  // EVENTS_PAGE events in all, so every visible event up to `end` is in it and the next `from` misses nothing.
  let end = upto;
  for (const evs of perRoom) if (evs.length === EVENTS_PAGE) end = Math.min(end, evs[evs.length - 1].stream);
  let events = perRoom
    .flat()
    .filter((e) => e.stream <= end)
    .sort((a, b) => a.stream - b.stream);
  if (events.length > EVENTS_PAGE) {
    events = events.slice(0, EVENTS_PAGE);
    end = events[events.length - 1].stream;
  }
  return { events, end };
}

/** GET /events: new events from `from` (absent: from now), waiting up to `timeoutMs` while there are none. */
export async function eventStream(hs: Homeserver, requester: Requester, p: EventsParams): Promise<EventsPage> {
  const asked = p.from === null ? null : parseSyncToken(p.from).stream;
  const deadline = Date.now() + p.timeoutMs;
  for (;;) {
    const upto = hs.stream.current;
    // A token from beyond our stream (e.g. a wiped database) continues from now.
    const since = asked === null || asked > upto ? upto : asked;
    const sources = p.roomId
      ? [await peekSource(hs, requester.userId, p.roomId, upto)]
      : await ownSources(hs, requester.userId, since, upto);
    const { events, end } = await eventsAfter(hs, sources, since, upto);
    const done = events.length > 0 || p.signal.aborted || Date.now() >= deadline;
    if (done) {
      const typing = hs.typing.serial;
      return {
        start: p.from ?? formatSyncToken({ stream: since, typing }),
        end: formatSyncToken({ stream: end, typing }),
        chunk: await hs.clientEvents(events, requester),
      };
    }
    while (hs.stream.current === upto && !p.signal.aborted) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      await hs.notifier.wait(left, p.signal);
    }
  }
}

/** GET /events/{eventId}: the event if the user may see it; M_NOT_FOUND otherwise (no existence leak). */
export async function visibleEventById(hs: Homeserver, requester: Requester, eventId: string): Promise<ClientEvent> {
  const ev = await hs.store.events.getEvent(eventId);
  const notFound = new AmiError("M_NOT_FOUND", "Event not found");
  if (!ev) throw notFound;
  let v: RoomVisibility;
  try {
    v = await readableRoom(hs, ev.roomId, requester.userId);
  } catch {
    throw notFound;
  }
  if (!isVisible(v.ranges, ev.stream)) throw notFound;
  const [out] = await hs.clientEvents([ev], requester);
  return out;
}

interface RoomInfo {
  room_id: string;
  membership: string;
  invite?: ClientEvent;
  messages?: { start?: string; end: string; chunk: ClientEvent[] };
  state?: ClientEvent[];
  visibility?: "public" | "private";
  account_data?: SyncBasicEvent[];
}

/** GET /initialSync: every room of the user (left ones with `archived`), its latest visible messages and state. */
export async function initialSync(
  hs: Homeserver,
  requester: Requester,
  opts: { limit: number; archived: boolean },
): Promise<Record<string, unknown>> {
  const userId = requester.userId;
  const upto = hs.stream.current;
  const wanted = new Set(opts.archived ? ["join", "invite", "leave", "ban"] : ["join", "invite"]);
  const rows = (await hs.store.events.getRoomsForUser(userId)).filter((m) => wanted.has(m.membership));
  const vis = await roomVisibilities(
    hs,
    userId,
    rows.map((m) => m.roomId),
    upto,
  );
  // Account data and presence as an initial /sync with no filter has them.
  const ctx = newSyncCtx(hs, requester, { since: null, filter: {}, fullState: false, upto, typingSerial: 0 });
  const data = await accountData(ctx);
  const roomData = (roomId: string) => data.rooms.get(roomId) ?? [];

  const invites = rows.filter((m) => m.membership === "invite");
  const readable = rows.filter((m) => m.membership !== "invite").map((m) => vis.get(m.roomId)!);
  const bounds = readable.map((v) => Math.min(upto, stateBound(v)));
  const latest = await latestVisibleEvents(
    hs,
    readable.map((v, i) => ({ roomId: v.roomId, before: bounds[i] + 1, visible: v.ranges })),
    opts.limit,
  );

  const rooms: RoomInfo[] = [];
  const inviteEvents = await hs.store.events.getEvents(invites.map((m) => m.eventId));
  for (const ev of inviteEvents) {
    const [invite] = await hs.clientEvents([ev], requester);
    rooms.push({ room_id: ev.roomId, membership: "invite", invite, account_data: roomData(ev.roomId) });
  }
  for (const [i, v] of readable.entries()) {
    const chunk: StoredEvent[] = latest[i].slice().reverse();
    const state = await readableState(hs, v);
    const room = await hs.store.rooms.getRoom(v.roomId);
    const messages: RoomInfo["messages"] = {
      end: topoToken(bounds[i] >= MAX_STREAM ? upto : bounds[i]),
      chunk: await hs.clientEvents(chunk, requester),
    };
    if (chunk.length) messages.start = topoToken(chunk[0].stream - 1);
    rooms.push({
      room_id: v.roomId,
      membership: v.membership ?? "leave",
      messages,
      state: await hs.clientEvents(state, requester),
      visibility: room?.isPublic ? "public" : "private",
      account_data: roomData(v.roomId),
    });
  }
  const people = new Set([userId]);
  for (const m of rows.filter((r) => r.membership === "join"))
    for (const x of await hs.store.events.getMembers(m.roomId, "join")) people.add(x.userId);
  return {
    end: formatSyncToken({ stream: upto, typing: hs.typing.serial }),
    rooms,
    presence: await presenceEvents(ctx, people),
    account_data: data.global,
  };
}
