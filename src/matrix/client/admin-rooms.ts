/**
 * Synapse's room admin API (docs/admin_api/rooms.md): list (filters and orders over the room summaries), details,
 * members, state, messages (all of the room: an admin reads past history visibility), block status, and
 * deletion — v1 answers when done, v2 at once with a `delete_id` whose status is kept in memory for a day.
 */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { isValidRoomId, randomString } from "../events/ids.ts";
import type { Homeserver } from "../hs.ts";
import { json, type MatrixRequest, type Route } from "../http/types.ts";
import { requireRoomId } from "../service/room-access.ts";
import { checkShutdown, type ShutdownResult, shutdownRoom } from "../service/room-shutdown.ts";
import { MAX_STREAM } from "../service/visibility.ts";
import type { RoomRow } from "../store/types.ts";
import { parseBody } from "../validate.ts";
import { adminRoute, boolQuery, enumQuery, pageQuery } from "./admin-kit.ts";
import { messagesPage } from "./room-messages.ts";

/** Synapse's room summary (list and details), from current state. */
async function roomJson(hs: Homeserver, room: RoomRow) {
  const state = await hs.store.events.getCurrentState(room.roomId);
  const c = (type: string) => state.find((e) => e.type === type && e.stateKey === "")?.pdu.content ?? {};
  const joined = state.filter((e) => e.type === "m.room.member" && e.pdu.content?.membership === "join");
  return {
    room_id: room.roomId,
    name: (c("m.room.name").name as string | undefined) ?? null,
    topic: c("m.room.topic").topic ?? null,
    avatar: c("m.room.avatar").url ?? null,
    canonical_alias: (c("m.room.canonical_alias").alias as string | undefined) ?? null,
    joined_members: joined.length,
    joined_local_members: joined.filter((e) => e.stateKey?.endsWith(`:${hs.serverName}`)).length,
    version: room.version,
    creator: room.creator,
    encryption: c("m.room.encryption").algorithm ?? null,
    federatable: c("m.room.create")["m.federate"] !== false,
    public: room.isPublic,
    join_rules: c("m.room.join_rules").join_rule ?? null,
    guest_access: c("m.room.guest_access").guest_access ?? null,
    history_visibility: c("m.room.history_visibility").history_visibility ?? null,
    state_events: state.length,
    room_type: c("m.room.create").type ?? null,
  };
}
type RoomJson = Awaited<ReturnType<typeof roomJson>>;

const ROOM_ORDERS = [
  "name",
  "alphabetical",
  "size",
  "canonical_alias",
  "joined_members",
  "joined_local_members",
  "version",
  "creator",
  "encryption",
  "federatable",
  "public",
  "join_rules",
  "guest_access",
  "history_visibility",
  "state_events",
] as const;
/** Orders Synapse sorts largest first in the forward direction. */
const LARGEST_FIRST = new Set(["joined_members", "joined_local_members", "version", "state_events"]);

function compareRooms(order: (typeof ROOM_ORDERS)[number]): (a: RoomJson, b: RoomJson) => number {
  const key = order === "alphabetical" ? "name" : order === "size" ? "joined_members" : order;
  const sign = LARGEST_FIRST.has(key) ? -1 : 1;
  return (a, b) => {
    const x = a[key as keyof RoomJson];
    const y = b[key as keyof RoomJson];
    const cmp =
      typeof x === "number" && typeof y === "number"
        ? x - y
        : x === y
          ? 0
          : x === null
            ? 1
            : y === null
              ? -1
              : String(x) < String(y)
                ? -1
                : 1;
    return sign * cmp || (a.room_id < b.room_id ? -1 : a.room_id > b.room_id ? 1 : 0);
  };
}

/** Search as Synapse: the name, the local part of the canonical alias, or the room ID (case-sensitive). */
function matches(r: RoomJson, term: string): boolean {
  const lower = term.toLowerCase();
  const aliasLocal = r.canonical_alias?.slice(1).split(":")[0] ?? "";
  return (
    (r.name ?? "").toLowerCase().includes(lower) || aliasLocal.toLowerCase().includes(lower) || r.room_id.includes(term)
  );
}

/**
 * Every room's summary, filtered and sorted in memory: the orders are over current state, which the store does
 * not index. Fine for a single server's rooms (thousands); reads one current state per room.
 */
async function listRooms(req: MatrixRequest) {
  const { hs, query: q } = req;
  const { offset, limit, dir } = pageQuery(q);
  const order = enumQuery(q, "order_by", ROOM_ORDERS, "name");
  const term = q.get("search_term") || undefined;
  const pub = boolQuery(q, "public_rooms", undefined);
  const empty = boolQuery(q, "empty_rooms", undefined);
  const all: RoomJson[] = [];
  let from: string | undefined;
  for (;;) {
    const page = await hs.store.rooms.listRooms({ from, limit: 500 });
    for (const r of page) all.push(await roomJson(hs, r));
    if (page.length < 500) break;
    from = page[page.length - 1].roomId;
  }
  const rooms = all
    .filter(
      (r) =>
        (!term || matches(r, term)) &&
        (pub === undefined || r.public === pub) &&
        (empty === undefined || (r.joined_members === 0) === empty),
    )
    .sort(compareRooms(order));
  if (dir === "b") rooms.reverse();
  const page = rooms.slice(offset, offset + limit);
  const out: Record<string, unknown> = { rooms: page, offset, total_rooms: rooms.length };
  if (offset + page.length < rooms.length) out.next_batch = offset + page.length;
  if (offset > 0) out.prev_batch = Math.max(0, offset - limit);
  return out;
}

async function knownRoom(req: MatrixRequest): Promise<RoomRow> {
  const roomId = requireRoomId(req.params.roomId);
  const room = await req.hs.store.rooms.getRoom(roomId);
  if (!room) throw new AmiError("M_NOT_FOUND", "Room not found");
  return room;
}

const deleteBody = z.object({
  new_room_user_id: z.string().max(255).optional(),
  room_name: z.string().max(255).optional(),
  message: z.string().max(65536).optional(),
  block: z.boolean().optional(),
  purge: z.boolean().optional(),
  force_purge: z.boolean().optional(),
});

function shutdownRequest(req: MatrixRequest) {
  const roomId = req.params.roomId;
  if (!isValidRoomId(roomId)) throw new AmiError("M_INVALID_PARAM", `${roomId} is not a legal room ID`);
  const b = parseBody(deleteBody, req.body ?? {});
  return {
    roomId,
    by: req.requester!.userId,
    newRoomUserId: b.new_room_user_id,
    roomName: b.room_name,
    message: b.message,
    block: b.block ?? false,
    purge: b.purge ?? true,
    forcePurge: b.force_purge ?? false,
  };
}

/** A v2 deletion's status (Synapse's delete_status task object). */
interface DeleteTask {
  delete_id: string;
  room_id: string;
  status: "active" | "complete" | "failed";
  error?: string;
  shutdown_room: ShutdownResult;
  until: number;
}
const TASK_KEEP_MS = 24 * 3600_000;
const tasksByHs = new WeakMap<Homeserver, Map<string, DeleteTask>>();
function tasks(hs: Homeserver): Map<string, DeleteTask> {
  let m = tasksByHs.get(hs);
  if (!m) {
    m = new Map();
    tasksByHs.set(hs, m);
  }
  const now = Date.now();
  for (const [k, t] of m) if (t.until < now) m.delete(k);
  return m;
}
const taskJson = ({ until: _, ...t }: DeleteTask) => t;

const R1 = "/_synapse/admin/v1/rooms/{roomId}";

export const routes: Route[] = [
  /** GET /_synapse/admin/v1/rooms */
  adminRoute("GET", ["/_synapse/admin/v1/rooms"], async (req) => {
    return json(await listRooms(req));
  }),
  /** GET /_synapse/admin/v1/rooms/{roomId} */
  adminRoute("GET", [R1], async (req) => {
    const room = await knownRoom(req);
    const summary = await roomJson(req.hs, room);
    const tomb = await req.hs.store.events.getCurrentStateEvent(room.roomId, "m.room.tombstone", "");
    const replacement = tomb?.pdu.content?.replacement_room;
    return json({
      ...summary,
      joined_local_devices: 0,
      forgotten: false,
      tombstoned: !!tomb,
      replacement_room: typeof replacement === "string" ? replacement : null,
    });
  }),
  /** GET /_synapse/admin/v1/rooms/{roomId}/members */
  adminRoute("GET", [`${R1}/members`], async (req) => {
    const room = await knownRoom(req);
    const members = (await req.hs.store.events.getMembers(room.roomId, "join")).map((m) => m.userId);
    return json({ members, total: members.length });
  }),
  /** GET /_synapse/admin/v1/rooms/{roomId}/state */
  adminRoute("GET", [`${R1}/state`], async (req) => {
    const room = await knownRoom(req);
    const type = req.query.get("type");
    const state = (await req.hs.store.events.getCurrentState(room.roomId)).filter((e) => !type || e.type === type);
    return json({ state: await req.hs.clientEvents(state, req.requester) });
  }),
  /** GET /_synapse/admin/v1/rooms/{roomId}/messages: the whole room, whatever its history visibility */
  adminRoute("GET", [`${R1}/messages`], async (req) => {
    const room = await knownRoom(req);
    return json(await messagesPage(req, room.roomId, [{ lo: 0, hi: MAX_STREAM }], MAX_STREAM, "f"));
  }),
  /** GET /_synapse/admin/v1/rooms/{roomId}/block */
  adminRoute("GET", [`${R1}/block`], async (req) => {
    const by = await req.hs.store.rooms.getRoomBlock(requireRoomId(req.params.roomId));
    return json(by ? { block: true, user_id: by } : { block: false });
  }),
  /** PUT /_synapse/admin/v1/rooms/{roomId}/block (any room ID, known here or not) */
  adminRoute("PUT", [`${R1}/block`], async (req) => {
    const roomId = requireRoomId(req.params.roomId);
    const { block } = parseBody(z.object({ block: z.boolean() }), req.body);
    await req.hs.store.rooms.setRoomBlocked(roomId, block ? req.requester!.userId : null);
    return json({ block });
  }),
  /** DELETE /_synapse/admin/v1/rooms/{roomId}: shut the room down, answered when done */
  // DELETE carries a JSON body here (Synapse's parameters), which the edge reads only when asked.
  adminRoute(
    "DELETE",
    [R1],
    async (req) => {
      return json(await shutdownRoom(req.hs, shutdownRequest(req)));
    },
    { body: "json" },
  ),
  /** DELETE /_synapse/admin/v2/rooms/{roomId}: shut the room down in the background; answers its delete_id */
  adminRoute(
    "DELETE",
    ["/_synapse/admin/v2/rooms/{roomId}"],
    async (req) => {
      const { hs } = req;
      const r = shutdownRequest(req);
      await checkShutdown(hs, r);
      const running = [...tasks(hs).values()].some((t) => t.room_id === r.roomId && t.status === "active");
      if (running) throw new AmiError("M_INVALID_PARAM", `History purge already in progress for ${r.roomId}`);
      const task: DeleteTask = {
        delete_id: randomString(16),
        room_id: r.roomId,
        status: "active",
        shutdown_room: { kicked_users: [], failed_to_kick_users: [], local_aliases: [], new_room_id: null },
        until: Date.now() + TASK_KEEP_MS,
      };
      tasks(hs).set(task.delete_id, task);
      shutdownRoom(hs, r).then(
        (res) => Object.assign(task, { status: "complete", shutdown_room: res, until: Date.now() + TASK_KEEP_MS }),
        (e) => Object.assign(task, { status: "failed", error: String(e), until: Date.now() + TASK_KEEP_MS }),
      );
      return json({ delete_id: task.delete_id });
    },
    { body: "json" },
  ),
  /** GET /_synapse/admin/v2/rooms/{roomId}/delete_status */
  adminRoute("GET", ["/_synapse/admin/v2/rooms/{roomId}/delete_status"], async (req) => {
    const roomId = requireRoomId(req.params.roomId);
    const results = [...tasks(req.hs).values()].filter((t) => t.room_id === roomId).map(taskJson);
    if (!results.length) throw new AmiError("M_NOT_FOUND", `No delete task for room_id '${roomId}' found`);
    return json({ results });
  }),
  /** GET /_synapse/admin/v2/rooms/delete_status/{deleteId} */
  adminRoute("GET", ["/_synapse/admin/v2/rooms/delete_status/{deleteId}"], async (req) => {
    const t = tasks(req.hs).get(req.params.deleteId);
    if (!t) throw new AmiError("M_NOT_FOUND", `delete id '${req.params.deleteId}' not found`);
    return json(taskJson(t));
  }),
];
