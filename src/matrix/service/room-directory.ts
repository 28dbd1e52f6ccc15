/**
 * The published room directory (spec list_public_rooms.yaml): summaries of published rooms, largest first,
 * paged with `p<offset>` tokens. Summaries are built from current state on each request; that is fine for
 * the hundreds of rooms a single server publishes.
 */
import { AmiError } from "../../core/errors.ts";
import { contentOf, field, type StateContents, type TopicContent } from "../events/types.ts";
import type { Homeserver } from "../hs.ts";
import type { StoredEvent } from "../store/types.ts";

/** PublishedRoomsChunk (spec list_public_rooms.yaml). */
export interface PublishedRoom {
  room_id: string;
  num_joined_members: number;
  world_readable: boolean;
  guest_can_join: boolean;
  join_rule: string;
  name?: string;
  topic?: string;
  canonical_alias?: string;
  avatar_url?: string;
  room_type?: string;
}

export interface PublicRoomsResponse {
  chunk: PublishedRoom[];
  total_room_count_estimate: number;
  next_batch?: string;
  prev_batch?: string;
}

export interface PublicRoomsQuery {
  limit?: number;
  since?: string;
  term?: string;
  /** null in the list matches rooms without a type. */
  roomTypes?: (string | null)[];
}

/** Plain-text topic: `topic`, or the text/plain entry of `m.topic`. */
function plainTopic(c: Partial<TopicContent> | undefined): string | undefined {
  if (!c) return undefined;
  const texts = field(c, "m.topic", "m.text");
  if (Array.isArray(texts)) {
    const plain = texts.find(
      (t) =>
        typeof field(t, "body") === "string" &&
        (field(t, "mimetype") === undefined || field(t, "mimetype") === "text/plain"),
    );
    if (plain) return plain.body;
  }
  return typeof c.topic === "string" ? c.topic : undefined;
}

export async function roomSummary(hs: Homeserver, roomId: string): Promise<PublishedRoom> {
  return summaryOfState(roomId, await hs.store.events.getCurrentState(roomId));
}

/** The PublishedRoomsChunk of a room from its current state (every event of it). */
export function summaryOfState(roomId: string, state: StoredEvent[]): PublishedRoom {
  const get = <T extends keyof StateContents>(type: T) =>
    contentOf(type, state.find((e) => e.type === type && e.stateKey === "")?.pdu);
  const joinRule = get("m.room.join_rules")?.join_rule;
  const chunk: PublishedRoom = {
    room_id: roomId,
    num_joined_members: state.filter(
      (e) => e.type === "m.room.member" && contentOf("m.room.member", e.pdu)?.membership === "join",
    ).length,
    world_readable: get("m.room.history_visibility")?.history_visibility === "world_readable",
    guest_can_join: get("m.room.guest_access")?.guest_access === "can_join",
    join_rule: typeof joinRule === "string" ? joinRule : "invite",
  };
  const name = get("m.room.name")?.name;
  if (typeof name === "string" && name) chunk.name = name;
  const topic = plainTopic(get("m.room.topic"));
  if (topic) chunk.topic = topic;
  const alias = get("m.room.canonical_alias")?.alias;
  if (typeof alias === "string") chunk.canonical_alias = alias;
  const avatar = get("m.room.avatar")?.url;
  if (typeof avatar === "string" && avatar) chunk.avatar_url = avatar;
  const type = get("m.room.create")?.type;
  if (typeof type === "string") chunk.room_type = type;
  return chunk;
}

export async function publicRooms(hs: Homeserver, q: PublicRoomsQuery): Promise<PublicRoomsResponse> {
  let offset = 0;
  if (q.since !== undefined) {
    const m = /^p(\d{1,9})$/.exec(q.since);
    if (!m) throw new AmiError("M_INVALID_PARAM", "'since' is not a valid pagination token");
    offset = Number(m[1]);
  }
  let rooms = await Promise.all((await hs.store.rooms.listPublicRoomIds()).map((id) => roomSummary(hs, id)));
  const total = rooms.length;
  const term = q.term?.trim().toLowerCase();
  if (term) {
    rooms = rooms.filter((r) =>
      [r.name, r.topic, r.canonical_alias, r.room_id].some(
        (s) => typeof s === "string" && s.toLowerCase().includes(term),
      ),
    );
  }
  if (q.roomTypes && q.roomTypes.length > 0) {
    const types = q.roomTypes;
    rooms = rooms.filter((r) => types.includes(r.room_type ?? null));
  }
  rooms.sort((a, b) => b.num_joined_members - a.num_joined_members || (a.room_id < b.room_id ? -1 : 1));
  const limit = q.limit === undefined || q.limit === 0 ? rooms.length : q.limit;
  const out: PublicRoomsResponse = { chunk: rooms.slice(offset, offset + limit), total_room_count_estimate: total };
  if (offset + limit < rooms.length) out.next_batch = `p${offset + limit}`;
  if (offset > 0) out.prev_batch = `p${Math.max(0, offset - limit)}`;
  return out;
}
