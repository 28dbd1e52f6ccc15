/**
 * Relationships (spec relations.yaml, threads_list.yaml): the events relating to an event, a room's threads. Both
 * read inside what history visibility shows the user (service/visibility.ts); the bundled aggregations of the
 * returned events come with hs.clientEvents.
 */
import { AmiError } from "../../core/errors.ts";
import { isValidEventId } from "../events/ids.ts";
import type { ClientEvent } from "../events/types.ts";
import { json, type MatrixRequest, type Route } from "../http/types.ts";
import { RECURSION_DEPTH, relatedEvents, roomThreads, visibleParent } from "../service/relations.ts";
import { requireRoomId } from "../service/room-access.ts";
import { parseStreamToken, topoToken } from "../service/room-query.ts";
import { MAX_STREAM, readableRoom } from "../service/visibility.ts";
import { queryInt } from "../validate.ts";

const MAX_LIMIT = 1000;

async function relations(req: MatrixRequest) {
  const { hs, query: q } = req;
  const roomId = requireRoomId(req.params.roomId);
  const eventId = req.params.eventId;
  if (!isValidEventId(eventId)) throw new AmiError("M_INVALID_PARAM", `Invalid event ID '${eventId}'`);
  const dir = q.get("dir") ?? "b";
  if (dir !== "b" && dir !== "f") throw new AmiError("M_INVALID_PARAM", "'dir' must be 'b' or 'f'");
  const recurseParam = q.get("recurse");
  if (recurseParam !== null && recurseParam !== "true" && recurseParam !== "false")
    throw new AmiError("M_INVALID_PARAM", "'recurse' must be true or false");
  const recurse = recurseParam === "true";
  const limit = Math.min(queryInt(q, "limit", 5, 0), MAX_LIMIT);
  const fromTok = q.get("from");
  const toTok = q.get("to");
  const v = await readableRoom(hs, roomId, req.requester!.userId);
  const parent = await visibleParent(hs.store, v, eventId);
  // As /messages: a token `t<N>` has the events <= N before it; the store's bounds are exclusive.
  const point = fromTok ? parseStreamToken(fromTok) : dir === "b" ? MAX_STREAM - 1 : 0;
  const to = toTok ? parseStreamToken(toTok, "to") : undefined;
  const page = await relatedEvents(hs.store, v, parent, {
    relType: req.params.relType,
    eventType: req.params.eventType,
    dir,
    from: dir === "b" ? point + 1 : point,
    to: to === undefined ? undefined : dir === "b" ? to : to + 1,
    limit,
    recurse,
  });
  const body: { chunk: ClientEvent[]; next_batch?: string; prev_batch?: string; recursion_depth?: number } = {
    chunk: await hs.clientEvents(page.events, req.requester),
  };
  if (page.next !== undefined) body.next_batch = topoToken(dir === "b" ? page.next - 1 : page.next);
  if (fromTok) body.prev_batch = fromTok;
  if (recurse) body.recursion_depth = RECURSION_DEPTH;
  return json(body);
}

export const routes: Route[] = [
  /** GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId} */
  {
    method: "GET",
    paths: ["/_matrix/client/v1/rooms/{roomId}/relations/{eventId}"],
    auth: "required",
    handler: relations,
  },
  /** GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType} */
  {
    method: "GET",
    paths: ["/_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}"],
    auth: "required",
    handler: relations,
  },
  /** GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}/{eventType} */
  {
    method: "GET",
    paths: ["/_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}"],
    auth: "required",
    handler: relations,
  },
  /** GET /_matrix/client/v1/rooms/{roomId}/threads */
  {
    method: "GET",
    paths: ["/_matrix/client/v1/rooms/{roomId}/threads"],
    auth: "required",
    async handler(req) {
      const { hs, query: q } = req;
      const roomId = requireRoomId(req.params.roomId);
      const include = q.get("include") ?? "all";
      if (include !== "all" && include !== "participated")
        throw new AmiError("M_INVALID_PARAM", "'include' must be 'all' or 'participated'");
      const limit = Math.min(queryInt(q, "limit", 10, 0), MAX_LIMIT);
      const fromTok = q.get("from");
      const userId = req.requester!.userId;
      const v = await readableRoom(hs, roomId, userId);
      const page = await roomThreads(hs.store, v, userId, {
        before: fromTok ? parseStreamToken(fromTok) : MAX_STREAM,
        limit,
        participated: include === "participated",
      });
      const body: { chunk: ClientEvent[]; next_batch?: string } = {
        chunk: await hs.clientEvents(page.roots, req.requester),
      };
      if (page.next !== undefined) body.next_batch = topoToken(page.next);
      return json(body);
    },
  },
];
