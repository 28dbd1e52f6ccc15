/**
 * Relationships between events (spec client-server "Relationships", "Threading", "Event replacements", "Reference
 * relations", "Annotations"): the rule a new relation must follow, the /relations and /threads reads (inside what
 * history visibility shows the user: service/visibility.ts) and the bundled aggregations every event-returning API
 * puts in unsigned["m.relations"] (one batch of store reads per page of events).
 */
import { AmiError } from "../../core/errors.ts";
import type { ClientEvent, EventContent, JsonObject } from "../events/types.ts";
import { relationOf } from "../store/common.ts";
import type { RelationQuery, Store, StoredEvent } from "../store/types.ts";
import { isVisible, MAX_STREAM, type RoomVisibility, type StreamRange, visibleRangesOf } from "./visibility.ts";

/** How deep `recurse=true` follows relations of relations (as Synapse). */
export const RECURSION_DEPTH = 3;

/** Before a send, serialised per room: one annotation per (user, event, type, key) (spec "Annotations"). */
export async function checkNewRelation(
  store: Store,
  sender: string,
  type: string,
  content: EventContent,
): Promise<void> {
  const rel = relationOf({ content });
  if (rel?.relType === "m.annotation" && rel.key !== null) {
    if (await store.relations.hasAnnotation(rel.relatesTo, sender, type, rel.key))
      throw new AmiError("M_DUPLICATE_ANNOTATION", "You already sent this annotation to this event");
  }
}

/**
 * A threaded receipt must name the event's thread (receipts.yaml: "the event_id is not related to the thread_id").
 * Only a thread reply is judged: other events (a root, a reaction to a reply...) are left to the client.
 */
export async function checkReceiptThread(store: Store, eventId: string, threadId: string): Promise<void> {
  const ev = await store.events.getEvent(eventId);
  const rel = ev ? relationOf(ev.pdu) : null;
  if (rel?.relType === "m.thread" && rel.relatesTo !== threadId)
    throw new AmiError("M_INVALID_PARAM", `The event is in thread ${rel.relatesTo}, not in '${threadId}'`);
}

/** The parent of a /relations read: in the room and visible to the user, or M_NOT_FOUND (no existence leak). */
export async function visibleParent(store: Store, v: RoomVisibility, eventId: string): Promise<StoredEvent> {
  const ev = await store.events.getEvent(eventId);
  if (!ev || ev.roomId !== v.roomId || !isVisible(v.ranges, ev.stream))
    throw new AmiError("M_NOT_FOUND", "Event not found");
  return ev;
}

export interface RelatedPage {
  /** The visible related events of the page. */
  events: StoredEvent[];
  /** Stream position to continue from (exclusive), when the page was full. */
  next?: number;
}

/**
 * One page of the events relating to `parent` (GET /relations): `from`/`to` exclusive stream bounds, each event
 * judged by the reader's visibility (a page may come back shorter than `limit`; `next` still leads on).
 */
export async function relatedEvents(
  store: Store,
  v: RoomVisibility,
  parent: StoredEvent,
  q: Omit<RelationQuery, "roomId" | "eventId" | "depth"> & { recurse: boolean },
): Promise<RelatedPage> {
  if (q.limit === 0) return { events: [] };
  const evs = await store.relations.getRelatedEvents({
    roomId: parent.roomId,
    eventId: parent.eventId,
    relType: q.relType,
    eventType: q.eventType,
    dir: q.dir,
    from: q.from,
    to: q.to,
    limit: q.limit,
    depth: q.recurse ? RECURSION_DEPTH : 1,
  });
  const page: RelatedPage = { events: evs.filter((e) => isVisible(v.ranges, e.stream)) };
  if (evs.length === q.limit) page.next = evs[evs.length - 1].stream;
  return page;
}

export interface ThreadPage {
  /** Visible thread roots, the most recently active thread first. */
  roots: StoredEvent[];
  /** Latest-activity position of the page's last thread: the next page's exclusive bound. */
  next?: number;
}

/** One page of a room's threads (GET /threads); `participated`: the user started or replied in them. */
export async function roomThreads(
  store: Store,
  v: RoomVisibility,
  userId: string,
  q: { before: number; limit: number; participated: boolean },
): Promise<ThreadPage> {
  if (q.limit === 0) return { roots: [] };
  const rows = await store.relations.getThreads({
    roomId: v.roomId,
    before: q.before,
    limit: q.limit,
    participant: q.participated ? userId : undefined,
  });
  const found = new Map((await store.events.getEvents(rows.map((r) => r.rootId))).map((e) => [e.eventId, e]));
  const roots: StoredEvent[] = [];
  for (const r of rows) {
    const ev = found.get(r.rootId);
    if (ev && ev.roomId === v.roomId && isVisible(v.ranges, ev.stream)) roots.push(ev);
  }
  const page: ThreadPage = { roots };
  if (rows.length === q.limit) page.next = rows[rows.length - 1].latestStream;
  return page;
}

/** Formats events without their own aggregations (the latest thread reply, an edit). */
export type PlainFormat = (evs: StoredEvent[]) => Promise<ClientEvent[]>;

/**
 * unsigned["m.relations"] for each event that has any (spec "Aggregations of child events"): `m.replace` (the
 * most recent valid replacement), `m.thread` ({latest_event, count, current_user_participated}) and
 * `m.reference` ({chunk: [{event_id}]}). Redacted events get none; redacted children are gone from the store's
 * relations. A fixed number of store reads for the whole page.
 */
export async function bundledAggregations(
  store: Store,
  evs: StoredEvent[],
  userId: string | null,
  format: PlainFormat,
): Promise<Map<string, JsonObject>> {
  const out = new Map<string, JsonObject>();
  const parents = new Map(evs.filter((e) => !e.redactedBy).map((e) => [e.eventId, e]));
  if (parents.size === 0) return out;
  const ids = [...parents.keys()];
  const [allRows, allThreads] = await Promise.all([
    store.relations.getRelationsOf(ids, ["m.replace", "m.reference"]),
    store.relations.getThreadSummaries(ids, userId ?? ""),
  ]);
  // Children the user may not read are left out (history visibility): where the user cannot see everything
  // after a thread's root (they left, or the room hides a stretch), its summary is counted again from what is seen.
  let ranges: Map<string, StreamRange[]> | null = null;
  if (userId !== null && (allRows.length || allThreads.length)) {
    const roomIds = new Set([
      ...allRows.map((r) => r.roomId),
      ...allThreads.flatMap((t) => parents.get(t.rootId)?.roomId ?? []),
    ]);
    ranges = await visibleRangesOf(store, userId, [...roomIds]);
  }
  const seen = (roomId: string, stream: number) => !ranges || isVisible(ranges.get(roomId) ?? [], stream);
  const rows = allRows.filter((r) => seen(r.roomId, r.stream));
  const threads: { rootId: string; count: number; latestEventId: string; participated: boolean }[] = [];
  for (const t of allThreads) {
    const root = parents.get(t.rootId);
    if (!root) continue;
    const rs = ranges?.get(root.roomId);
    if (!rs || rs.some((r) => r.lo <= root.stream && r.hi === MAX_STREAM)) {
      threads.push(t);
      continue;
    }
    const replies = (
      await store.relations.getRelatedEvents({
        roomId: root.roomId,
        eventId: root.eventId,
        relType: "m.thread",
        dir: "b",
        from: MAX_STREAM,
        limit: 10_000,
        depth: 1,
      })
    ).filter((e) => isVisible(rs, e.stream));
    if (replies.length)
      threads.push({
        rootId: t.rootId,
        count: replies.length,
        latestEventId: replies[0].eventId,
        participated: replies.some((e) => e.sender === userId),
      });
  }
  const entry = (id: string): JsonObject => {
    const e = out.get(id) ?? {};
    out.set(id, e);
    return e;
  };
  // Edits: only the original's sender may replace it, with an event of the same type; neither is state, and a
  // replacement is never itself replaced (spec "Validity of replacement events").
  const editIds: string[] = [];
  for (const r of rows) {
    if (r.relType === "m.reference") {
      const agg = entry(r.relatesTo);
      const ref = (agg["m.reference"] ?? { chunk: [] }) as { chunk: { event_id: string }[] };
      ref.chunk.push({ event_id: r.eventId });
      agg["m.reference"] = ref;
      continue;
    }
    const p = parents.get(r.relatesTo);
    if (p && r.sender === p.sender && r.type === p.type && p.stateKey === null && !isReplacement(p))
      editIds.push(r.eventId);
  }
  // The edits and the latest thread replies in one read.
  const wanted = [...editIds, ...threads.map((t) => t.latestEventId)];
  const fetched = new Map((wanted.length ? await store.events.getEvents(wanted) : []).map((e) => [e.eventId, e]));
  const edits = new Map<string, StoredEvent>();
  for (const e of editIds.flatMap((id) => fetched.get(id) ?? [])) {
    const parentId = relationOf(e.pdu)?.relatesTo;
    if (!parentId || e.stateKey !== null || e.redactedBy) continue;
    const newContent = e.pdu.content?.["m.new_content"];
    if (e.type !== "m.room.encrypted" && (typeof newContent !== "object" || newContent === null)) continue;
    const best = edits.get(parentId);
    // The most recent by origin_server_ts, ties broken by the greater event ID.
    if (
      !best ||
      e.originServerTs > best.originServerTs ||
      (e.originServerTs === best.originServerTs && e.eventId > best.eventId)
    )
      edits.set(parentId, e);
  }
  const latest = threads.flatMap((t) => fetched.get(t.latestEventId) ?? []);
  const extra = [...new Set([...edits.values(), ...latest])];
  const formatted = new Map((extra.length ? await format(extra) : []).map((c) => [c.event_id, c]));
  for (const [parentId, e] of edits) {
    const c = formatted.get(e.eventId);
    if (c) entry(parentId)["m.replace"] = c;
  }
  for (const t of threads) {
    const c = formatted.get(t.latestEventId);
    const root = parents.get(t.rootId);
    if (!c || !root) continue;
    entry(t.rootId)["m.thread"] = {
      latest_event: c,
      count: t.count,
      current_user_participated: t.participated || root.sender === userId,
    };
  }
  return out;
}

const isReplacement = (e: StoredEvent): boolean => relationOf(e.pdu)?.relType === "m.replace";
