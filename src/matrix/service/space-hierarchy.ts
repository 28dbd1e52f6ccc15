/**
 * The space hierarchy (spec space_hierarchy.yaml, "Spaces"): a breadth-first walk from a room over its
 * m.space.child state (children with a non-empty `via`), as Synapse walks it. Only rooms of type m.space are walked
 * into; a room the requester may not preview (room-preview.ts) is left out and its children are not walked; a child
 * this server does not know is left out too (no federation). Children are visited in the spec's order: a valid
 * `order` first, by it, then by the child event's origin_server_ts, then by room ID.
 *
 * Pagination is stateless: `from` is the number of rooms already returned and a digest of the request's root,
 * `suggested_only` and `max_depth` (a token used with others is refused, as the spec asks); each page walks again
 * from the root and skips what was returned.
 */
import { createHash } from "node:crypto";
import { AmiError } from "../../core/errors.ts";
import { isValidRoomId } from "../events/ids.ts";
import type { Homeserver } from "../hs.ts";
import type { StoredEvent } from "../store/types.ts";
import { type RoomPreview, roomPreview } from "./room-preview.ts";

/** Rooms looked at in one request at most, whatever the depth: bounds the work of a huge or cyclic space graph. */
const MAX_WALKED = 2000;

export interface HierarchyQuery {
  roomId: string;
  userId: string;
  suggestedOnly: boolean;
  maxDepth: number;
  limit: number;
  from?: string;
}

/** A child event as stripped state with its origin_server_ts (StrippedChildStateEvent). */
export interface StrippedChild {
  type: string;
  state_key: string;
  content: Record<string, unknown>;
  sender: string;
  origin_server_ts: number;
}

export interface HierarchyRoom extends RoomPreview {
  children_state: StrippedChild[];
}

export interface HierarchyPage {
  rooms: HierarchyRoom[];
  next_batch?: string;
}

/** The spec's valid `order`: at most 50 characters, each 0x20-0x7E. */
const validOrder = (o: unknown): o is string => typeof o === "string" && o.length <= 50 && /^[\x20-\x7e]*$/.test(o);

/** The room's m.space.child events that name a child (a room ID with a non-empty `via`), in the spec's order. */
export function childEvents(state: StoredEvent[], suggestedOnly: boolean): StoredEvent[] {
  const children = state.filter((e) => {
    const c = e.pdu.content ?? {};
    return (
      e.type === "m.space.child" &&
      e.stateKey !== null &&
      isValidRoomId(e.stateKey) &&
      Array.isArray(c.via) &&
      c.via.length > 0 &&
      (!suggestedOnly || c.suggested === true)
    );
  });
  const key = (e: StoredEvent) => {
    const o = e.pdu.content?.order;
    return validOrder(o) ? o : null;
  };
  return children.sort((a, b) => {
    const [oa, ob] = [key(a), key(b)];
    if (oa !== ob) return oa === null ? 1 : ob === null ? -1 : oa < ob ? -1 : 1;
    if (a.originServerTs !== b.originServerTs) return a.originServerTs - b.originServerTs;
    return (a.stateKey ?? "") < (b.stateKey ?? "") ? -1 : 1;
  });
}

const strippedChild = (e: StoredEvent): StrippedChild => ({
  type: e.type,
  state_key: e.stateKey ?? "",
  content: e.pdu.content ?? {},
  sender: e.sender,
  origin_server_ts: e.originServerTs,
});

function digest(q: HierarchyQuery): string {
  return createHash("sha256").update(`${q.roomId}\n${q.suggestedOnly}\n${q.maxDepth}`).digest("base64url").slice(0, 12);
}

/** The offset a `from` token names; M_INVALID_PARAM for a malformed one or one issued for another request. */
function offsetOf(q: HierarchyQuery): number {
  if (q.from === undefined) return 0;
  const m = /^h(\d{1,6})_([A-Za-z0-9_-]{12})$/.exec(q.from);
  if (!m) throw new AmiError("M_INVALID_PARAM", "'from' is not a valid pagination token");
  if (m[2] !== digest(q))
    throw new AmiError("M_INVALID_PARAM", "suggested_only and max_depth cannot change on paginated requests");
  return Number(m[1]);
}

/** GET /rooms/{roomId}/hierarchy: M_FORBIDDEN when the requester may not preview the root. */
export async function spaceHierarchy(hs: Homeserver, q: HierarchyQuery): Promise<HierarchyPage> {
  const offset = offsetOf(q);
  const root = await roomPreview(hs, q.userId, q.roomId);
  if (!root) throw new AmiError("M_FORBIDDEN", "You are not allowed to view this room.");
  const want = offset + q.limit + 1;
  const found: HierarchyRoom[] = [];
  const seen = new Set<string>();
  const queue: { roomId: string; depth: number }[] = [{ roomId: q.roomId, depth: 0 }];
  for (let i = 0; i < queue.length && found.length < want && seen.size < MAX_WALKED; i++) {
    const { roomId, depth } = queue[i];
    if (seen.has(roomId)) continue;
    seen.add(roomId);
    const p = roomId === q.roomId ? root : await roomPreview(hs, q.userId, roomId);
    if (!p) continue;
    const children = p.preview.room_type === "m.space" ? childEvents(p.state, q.suggestedOnly) : [];
    found.push({ ...p.preview, children_state: children.map(strippedChild) });
    if (depth < q.maxDepth)
      for (const c of children)
        if (!seen.has(c.stateKey ?? "")) queue.push({ roomId: c.stateKey ?? "", depth: depth + 1 });
  }
  const page: HierarchyPage = { rooms: found.slice(offset, offset + q.limit) };
  if (found.length > offset + q.limit) page.next_batch = `h${offset + q.limit}_${digest(q)}`;
  return page;
}
