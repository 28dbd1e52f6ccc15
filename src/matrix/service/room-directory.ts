/**
 * The published room directory (spec list_public_rooms.yaml): summaries of published rooms, largest first,
 * paged with `p<offset>` tokens. Summaries are built from current state on each request; that is fine for
 * the hundreds of rooms a single server publishes.
 */
import { AmiError } from "../../core/errors.ts";
import type { Homeserver } from "../hs.ts";

export interface PublicRoomsQuery {
  limit?: number;
  since?: string;
  term?: string;
  /** null in the list matches rooms without a type. */
  roomTypes?: (string | null)[];
}

/** Plain-text topic: `topic`, or the text/plain entry of `m.topic`. */
function plainTopic(c: Record<string, any> | undefined): string | undefined {
  if (!c) return undefined;
  const texts = c["m.topic"]?.["m.text"];
  if (Array.isArray(texts)) {
    const plain = texts.find(
      (t: any) => typeof t?.body === "string" && (t.mimetype === undefined || t.mimetype === "text/plain"),
    );
    if (plain) return plain.body;
  }
  return typeof c.topic === "string" ? c.topic : undefined;
}

export async function roomSummary(hs: Homeserver, roomId: string): Promise<Record<string, any>> {
  const state = await hs.store.events.getCurrentState(roomId);
  const get = (type: string) => state.find((e) => e.type === type && e.stateKey === "")?.pdu.content;
  const chunk: Record<string, any> = {
    room_id: roomId,
    num_joined_members: state.filter((e) => e.type === "m.room.member" && e.pdu.content?.membership === "join").length,
    world_readable: get("m.room.history_visibility")?.history_visibility === "world_readable",
    guest_can_join: get("m.room.guest_access")?.guest_access === "can_join",
    join_rule: typeof get("m.room.join_rules")?.join_rule === "string" ? get("m.room.join_rules")!.join_rule : "invite",
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

export async function publicRooms(hs: Homeserver, q: PublicRoomsQuery): Promise<Record<string, any>> {
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
  const out: Record<string, any> = { chunk: rooms.slice(offset, offset + limit), total_room_count_estimate: total };
  if (offset + limit < rooms.length) out.next_batch = `p${offset + limit}`;
  if (offset > 0) out.prev_batch = `p${Math.max(0, offset - limit)}`;
  return out;
}
