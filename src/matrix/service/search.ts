/**
 * Server side search over room events (spec client-server "Server Side Search", search.yaml): the rooms the user
 * is or was in, only what history visibility lets them read (the visible ranges go down to the store as spans, so
 * counts and pages are exact), ranked by the backend's full-text index or newest first.
 */
import { AmiError } from "../../core/errors.ts";
import type { ClientEvent } from "../events/types.ts";
import type { Homeserver } from "../hs.ts";
import { searchWords } from "../store/common.ts";
import type { RoomStreamSpan, SearchHit, SearchKey, StoredEvent } from "../store/types.ts";
import { MAX_TIMELINE_LIMIT, type RoomEventFilter, roomAllowed } from "./filters.ts";
import type { Requester } from "./requester.ts";
import { topoToken } from "./room-query.ts";
import { type RoomVisibility, readableState, roomVisibilities, visibleRoomEvents } from "./visibility.ts";

export interface SearchCriteria {
  searchTerm: string;
  keys?: SearchKey[];
  filter?: RoomEventFilter;
  orderBy?: "rank" | "recent";
  eventContext?: { beforeLimit?: number; afterLimit?: number; includeProfile?: boolean };
  includeState?: boolean;
  groupBy?: ("room_id" | "sender")[];
}

interface UserProfile {
  displayname?: string;
  avatar_url?: string;
}

export interface EventContext {
  start: string;
  end: string;
  profile_info?: Record<string, UserProfile>;
  events_before: ClientEvent[];
  events_after: ClientEvent[];
}

export interface RoomEventsResult {
  count: number;
  highlights: string[];
  results: { rank: number; result: ClientEvent; context?: EventContext }[];
  next_batch?: string;
  state?: Record<string, ClientEvent[]>;
  groups?: Record<string, Record<string, { results: string[]; order: number; next_batch?: string }>>;
}

const DEFAULT_LIMIT = 10;
const DEFAULT_CONTEXT = 5;
const ALL_KEYS: SearchKey[] = ["content.body", "content.name", "content.topic"];

/** `next_batch`: `k<offset>` for rank order (results skipped), `r<stream>` for recent (events below it). */
function parseBatch(token: string | null, orderBy: "rank" | "recent"): number | undefined {
  if (token === null) return undefined;
  const m = /^([kr])(\d{1,15})$/.exec(token);
  if (!m || (m[1] === "k") !== (orderBy === "rank"))
    throw new AmiError("M_INVALID_PARAM", "'next_batch' is not a valid token for this order");
  return Number(m[2]);
}

/** The indexed field of an event, as `keys` names it. */
function searchedText(e: StoredEvent): string {
  const c = e.pdu.content;
  const v = e.type === "m.room.message" ? c?.body : e.type === "m.room.name" ? c?.name : c?.topic;
  return typeof v === "string" ? v : "";
}

/** The words of the results that matched (each starts with a search word), as written, and the search words. */
function highlightsOf(words: string[], hits: SearchHit[]): string[] {
  const out = new Set(words);
  for (const h of hits)
    for (const t of searchedText(h.event).match(/[\p{L}\p{N}]+/gu) ?? []) {
      const lower = t.toLowerCase();
      if (words.some((w) => lower.startsWith(w))) out.add(t);
    }
  return [...out];
}

async function profilesAt(hs: Homeserver, ev: StoredEvent, senders: Set<string>): Promise<Record<string, UserProfile>> {
  const state = await hs.store.events.getStateAt(ev.roomId, ev.stream, ["m.room.member"]);
  const out: Record<string, UserProfile> = {};
  for (const m of state) {
    if (m.stateKey === null || !senders.has(m.stateKey)) continue;
    const c = m.pdu.content ?? {};
    const p: UserProfile = {};
    if (typeof c.displayname === "string") p.displayname = c.displayname;
    if (typeof c.avatar_url === "string") p.avatar_url = c.avatar_url;
    out[m.stateKey] = p;
  }
  return out;
}

async function contextOf(
  hs: Homeserver,
  who: Requester,
  v: RoomVisibility,
  ev: StoredEvent,
  opts: NonNullable<SearchCriteria["eventContext"]>,
): Promise<EventContext> {
  const nBefore = Math.min(opts.beforeLimit ?? DEFAULT_CONTEXT, MAX_TIMELINE_LIMIT);
  const nAfter = Math.min(opts.afterLimit ?? DEFAULT_CONTEXT, MAX_TIMELINE_LIMIT);
  const roomId = ev.roomId;
  const [before, after] = await Promise.all([
    nBefore ? visibleRoomEvents(hs, v.ranges, { roomId, dir: "b", from: ev.stream, limit: nBefore }) : [],
    nAfter ? visibleRoomEvents(hs, v.ranges, { roomId, dir: "f", from: ev.stream, limit: nAfter }) : [],
  ]);
  const ctx: EventContext = {
    start: topoToken((before.length ? before[before.length - 1].stream : ev.stream) - 1),
    end: topoToken(after.length ? after[after.length - 1].stream : ev.stream),
    events_before: await hs.clientEvents(before, who),
    events_after: await hs.clientEvents(after, who),
  };
  if (opts.includeProfile) {
    ctx.profile_info = await profilesAt(hs, ev, new Set([ev, ...before, ...after].map((e) => e.sender)));
  }
  return ctx;
}

/** POST /search's room_events category for `who`; `nextBatch` continues a previous answer. */
export async function searchRoomEvents(
  hs: Homeserver,
  who: Requester,
  c: SearchCriteria,
  nextBatch: string | null,
): Promise<RoomEventsResult> {
  const orderBy = c.orderBy ?? "rank";
  const cursor = parseBatch(nextBatch, orderBy);
  const limit = Math.min(c.filter?.limit ?? DEFAULT_LIMIT, MAX_TIMELINE_LIMIT);
  const words = searchWords(c.searchTerm);
  const rooms = (await hs.store.events.getRoomsForUser(who.userId))
    .map((m) => m.roomId)
    .filter((r) => roomAllowed(c.filter, r));
  const vis = await roomVisibilities(hs, who.userId, rooms);
  const spans: RoomStreamSpan[] = [];
  for (const v of vis.values()) for (const r of v.ranges) spans.push({ roomId: v.roomId, lo: r.lo, hi: r.hi });
  const f = c.filter;
  const { hits: got, count } = await hs.store.search.searchEvents({
    words,
    spans,
    keys: c.keys?.length ? c.keys : ALL_KEYS,
    filter: f && {
      types: f.types,
      notTypes: f.not_types,
      senders: f.senders,
      notSenders: f.not_senders,
      containsUrl: f.contains_url,
    },
    orderBy,
    limit: limit + 1,
    offset: orderBy === "rank" ? cursor : undefined,
    before: orderBy === "recent" ? cursor : undefined,
  });
  const hits = got.slice(0, limit);
  const events = await hs.clientEvents(
    hits.map((h) => h.event),
    who,
  );
  const out: RoomEventsResult = {
    count,
    highlights: highlightsOf(words, hits),
    results: hits.map((h, i) => ({ rank: h.rank, result: events[i] })),
  };
  if (got.length > limit) {
    out.next_batch = orderBy === "rank" ? `k${(cursor ?? 0) + limit}` : `r${hits[hits.length - 1].event.stream}`;
  }
  if (c.eventContext) {
    const ctx = c.eventContext;
    await Promise.all(
      hits.map(async (h, i) => {
        out.results[i].context = await contextOf(hs, who, vis.get(h.event.roomId)!, h.event, ctx);
      }),
    );
  }
  if (c.includeState) {
    out.state = {};
    for (const roomId of new Set(hits.map((h) => h.event.roomId))) {
      out.state[roomId] = await hs.clientEvents(await readableState(hs, vis.get(roomId)!), who);
    }
  }
  if (c.groupBy?.length) {
    out.groups = {};
    for (const key of c.groupBy) {
      const groups: Record<string, { results: string[]; order: number }> = {};
      let order = 0;
      for (const h of hits) {
        const value = key === "room_id" ? h.event.roomId : h.event.sender;
        groups[value] ??= { results: [], order: ++order };
        groups[value].results.push(h.event.eventId);
      }
      out.groups[key] = groups;
    }
  }
  return out;
}
