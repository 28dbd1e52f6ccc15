/**
 * Reading rooms (spec message_pagination.yaml, event_context.yaml, rooms.yaml: event, members,
 * joined_members; list_joined_rooms.yaml). Every read shows only what history visibility lets the user see
 * (service/visibility.ts).
 */
import { AmiError } from "../../core/errors.ts";
import { isValidEventId } from "../events/ids.ts";
import type { ClientEvent } from "../events/types.ts";
import type { Homeserver } from "../hs.ts";
import { json, type MatrixRequest, type Route } from "../http/types.ts";
import { requireJoined, requireRoomId } from "../service/room-access.ts";
import { parseRoomFilter, parseStreamToken, type RoomFilter, topoToken } from "../service/room-query.ts";
import {
  isVisible,
  MAX_STREAM,
  type RoomVisibility,
  readableRoom,
  type StreamRange,
  stateBound,
  visibleRoomEvents,
} from "../service/visibility.ts";
import type { RoomEventQuery, StoredEvent } from "../store/types.ts";
import { queryInt } from "../validate.ts";

const MAX_LIMIT = 1000;

function filterQuery(
  f: RoomFilter,
): Pick<RoomEventQuery, "types" | "notTypes" | "senders" | "notSenders" | "containsUrl"> {
  return {
    types: f.types,
    notTypes: f.notTypes,
    senders: f.senders,
    notSenders: f.notSenders,
    containsUrl: f.containsUrl,
  };
}

/** Membership events of `senders` in the state the user may see (current, or as of `at`). */
async function membersOf(
  hs: Homeserver,
  roomId: string,
  senders: Iterable<string>,
  at: number,
): Promise<StoredEvent[]> {
  const want = new Set(senders);
  if (want.size === 0) return [];
  const state =
    at >= hs.stream.current
      ? await hs.store.events.getCurrentState(roomId)
      : await hs.store.events.getStateAt(roomId, at, ["m.room.member"]);
  return state.filter((e) => e.type === "m.room.member" && e.stateKey !== null && want.has(e.stateKey));
}

function eventIdParam(req: MatrixRequest): string {
  const id = req.params.eventId;
  if (!isValidEventId(id)) throw new AmiError("M_INVALID_PARAM", `Invalid event ID '${id}'`);
  return id;
}

/** The event if it is in the room and visible to the user; M_NOT_FOUND otherwise (no existence leak). */
async function visibleEvent(hs: Homeserver, v: RoomVisibility, eventId: string): Promise<StoredEvent> {
  const ev = await hs.store.events.getEvent(eventId);
  if (!ev || ev.roomId !== v.roomId || !isVisible(v.ranges, ev.stream))
    throw new AmiError("M_NOT_FOUND", "Event not found");
  return ev;
}

/**
 * One page of /messages (the query's from, to, dir, limit and filter) inside `ranges`; lazy-loaded members as of
 * `stateAt`. The client route passes the reader's visible ranges, the admin API all of the room.
 */
export async function messagesPage(
  req: MatrixRequest,
  roomId: string,
  ranges: StreamRange[],
  stateAt: number,
  defaultDir: "b" | "f",
): Promise<{ start: string; chunk: ClientEvent[]; end?: string; state?: ClientEvent[] }> {
  const { hs, query: q } = req;
  const dir = q.get("dir") ?? defaultDir;
  if (dir !== "b" && dir !== "f") throw new AmiError("M_INVALID_PARAM", "'dir' must be 'b' or 'f'");
  const filter = parseRoomFilter(q);
  const limit = Math.min(queryInt(q, "limit", filter.limit ?? 10, 0), MAX_LIMIT);
  const fromTok = q.get("from");
  const toTok = q.get("to");
  // Store bounds are exclusive; a token `t<N>` has events <= N before it.
  const point = fromTok ? parseStreamToken(fromTok) : dir === "b" ? hs.stream.current : 0;
  const to = toTok ? parseStreamToken(toTok, "to") : undefined;
  const from = dir === "b" ? point + 1 : point;
  const bound = to === undefined ? undefined : dir === "b" ? to : to + 1;
  const evs =
    limit === 0
      ? []
      : await visibleRoomEvents(hs, ranges, { roomId, dir, from, to: bound, limit, ...filterQuery(filter) });
  const body: { start: string; chunk: ClientEvent[]; end?: string; state?: ClientEvent[] } = {
    start: fromTok ?? topoToken(point),
    chunk: await hs.clientEvents(evs, req.requester),
  };
  if (evs.length > 0 && evs.length === limit) {
    const last = evs[evs.length - 1].stream;
    body.end = topoToken(dir === "b" ? last - 1 : last);
  }
  if (filter.lazyLoadMembers) {
    const members = await membersOf(hs, roomId, new Set(evs.map((e) => e.sender)), stateAt);
    body.state = await hs.clientEvents(members, req.requester);
  }
  return body;
}

/** How long /members and /joined_members wait for a partial-state room's resync before a 503. */
const MEMBERS_WAIT_MS = 60_000;

export const routes: Route[] = [
  /** GET /_matrix/client/v3/rooms/{roomId}/messages */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/rooms/{roomId}/messages"],
    auth: "required",
    async handler(req) {
      const roomId = requireRoomId(req.params.roomId);
      const v = await readableRoom(req.hs, roomId, req.requester!.userId);
      return json(await messagesPage(req, roomId, v.ranges, stateBound(v), "b"));
    },
  },
  /** GET /_matrix/client/v3/rooms/{roomId}/context/{eventId} */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/rooms/{roomId}/context/{eventId}"],
    auth: "required",
    async handler(req) {
      const { hs, query: q } = req;
      const roomId = requireRoomId(req.params.roomId);
      const eventId = eventIdParam(req);
      const filter = parseRoomFilter(q);
      const limit = Math.min(queryInt(q, "limit", filter.limit ?? 10, 0), MAX_LIMIT);
      const v = await readableRoom(hs, roomId, req.requester!.userId);
      const ev = await visibleEvent(hs, v, eventId);
      const nBefore = Math.floor(limit / 2);
      const nAfter = limit - nBefore;
      const fq = filterQuery(filter);
      const before = nBefore
        ? await visibleRoomEvents(hs, v.ranges, { roomId, dir: "b", from: ev.stream, limit: nBefore, ...fq })
        : [];
      const after = nAfter
        ? await visibleRoomEvents(hs, v.ranges, { roomId, dir: "f", from: ev.stream, limit: nAfter, ...fq })
        : [];
      const lastStream = after.length ? after[after.length - 1].stream : ev.stream;
      let state =
        lastStream >= hs.stream.current
          ? await hs.store.events.getCurrentState(roomId)
          : await hs.store.events.getStateAt(roomId, lastStream);
      if (filter.lazyLoadMembers) {
        const senders = new Set([ev, ...before, ...after].map((e) => e.sender));
        state = state.filter((e) => e.type !== "m.room.member" || (e.stateKey !== null && senders.has(e.stateKey)));
      }
      const [event] = await hs.clientEvents([ev], req.requester);
      return json({
        start: topoToken((before.length ? before[before.length - 1].stream : ev.stream) - 1),
        end: topoToken(lastStream),
        event,
        events_before: await hs.clientEvents(before, req.requester),
        events_after: await hs.clientEvents(after, req.requester),
        state: await hs.clientEvents(state, req.requester),
      });
    },
  },
  /** GET /_matrix/client/v3/rooms/{roomId}/event/{eventId} */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/rooms/{roomId}/event/{eventId}"],
    auth: "required",
    async handler(req) {
      const roomId = requireRoomId(req.params.roomId);
      const eventId = eventIdParam(req);
      const v = await readableRoom(req.hs, roomId, req.requester!.userId);
      const ev = await visibleEvent(req.hs, v, eventId);
      const [client] = await req.hs.clientEvents([ev], req.requester);
      return json(client);
    },
  },
  /** GET /_matrix/client/v3/rooms/{roomId}/members */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/rooms/{roomId}/members"],
    auth: "required",
    async handler(req) {
      const { hs, query: q } = req;
      const roomId = requireRoomId(req.params.roomId);
      const membership = q.get("membership");
      const notMembership = q.get("not_membership");
      const valid = ["join", "invite", "knock", "leave", "ban"];
      for (const [k, v] of [
        ["membership", membership],
        ["not_membership", notMembership],
      ] as const) {
        if (v !== null && !valid.includes(v))
          throw new AmiError("M_INVALID_PARAM", `'${k}' must be one of ${valid.join(", ")}`);
      }
      const v = await readableRoom(hs, roomId, req.requester!.userId);
      // A partial-state room (joined over federation with members omitted): as Synapse, wait for its members.
      await hs.partialState.waitFor(roomId, MEMBERS_WAIT_MS);
      const atTok = q.get("at");
      const at = Math.min(atTok ? parseStreamToken(atTok, "at") : MAX_STREAM, stateBound(v));
      let members =
        at >= hs.stream.current
          ? (await hs.store.events.getCurrentState(roomId)).filter((e) => e.type === "m.room.member")
          : await hs.store.events.getStateAt(roomId, at, ["m.room.member"]);
      members = members.filter((e) => {
        const m = e.pdu.content?.membership;
        return (membership === null || m === membership) && (notMembership === null || m !== notMembership);
      });
      return json({ chunk: await hs.clientEvents(members, req.requester) });
    },
  },
  /** GET /_matrix/client/v3/rooms/{roomId}/joined_members */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/rooms/{roomId}/joined_members"],
    auth: "required",
    async handler(req) {
      const roomId = requireRoomId(req.params.roomId);
      await requireJoined(req.hs, roomId, req.requester!.userId);
      await req.hs.partialState.waitFor(roomId, MEMBERS_WAIT_MS);
      const rows = await req.hs.store.events.getMembers(roomId, "join");
      const joined: Record<string, { display_name?: string; avatar_url?: string }> = {};
      for (const e of await req.hs.store.events.getEvents(rows.map((r) => r.eventId))) {
        const c = e.pdu.content ?? {};
        const entry: { display_name?: string; avatar_url?: string } = {};
        if (typeof c.displayname === "string") entry.display_name = c.displayname;
        if (typeof c.avatar_url === "string") entry.avatar_url = c.avatar_url;
        if (e.stateKey) joined[e.stateKey] = entry;
      }
      return json({ joined });
    },
  },
  /** GET /_matrix/client/v3/joined_rooms */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/joined_rooms"],
    auth: "required",
    async handler(req) {
      const rows = await req.hs.store.events.getRoomsForUser(req.requester!.userId);
      return json({ joined_rooms: rows.filter((r) => r.membership === "join").map((r) => r.roomId) });
    },
  },
];
