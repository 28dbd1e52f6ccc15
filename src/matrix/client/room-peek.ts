/**
 * Reads that jump into a room's history: an event by timestamp (spec room_event_by_timestamp.yaml) and the
 * deprecated room initial sync (room_initial_sync.yaml). Both answer within history visibility.
 */
import { AmiError } from "../../core/errors.ts";
import { json, type Route } from "../http/types.ts";
import { visibleEventNear } from "../service/event-by-timestamp.ts";
import { requireRoomId } from "../service/room-access.ts";
import { INITIAL_SYNC_MESSAGES, roomInitialSync } from "../service/room-initial-sync.ts";
import { readableRoom } from "../service/visibility.ts";
import { queryInt } from "../validate.ts";

/** A larger initialSync `limit` is served at this size. */
const MAX_MESSAGES = 100;

export const routes: Route[] = [
  /** GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event */
  {
    method: "GET",
    paths: ["/_matrix/client/v1/rooms/{roomId}/timestamp_to_event"],
    auth: "required",
    rateLimit: true,
    async handler(req) {
      const { hs, query: q } = req;
      const roomId = requireRoomId(req.params.roomId);
      if (q.get("ts") === null) throw new AmiError("M_MISSING_PARAM", "'ts' is required");
      const ts = queryInt(q, "ts", 0, 0);
      const dir = q.get("dir");
      if (dir === null) throw new AmiError("M_MISSING_PARAM", "'dir' is required");
      if (dir !== "f" && dir !== "b") throw new AmiError("M_INVALID_PARAM", "'dir' must be 'f' or 'b'");
      const v = await readableRoom(hs, roomId, req.requester!.userId);
      const ev = await visibleEventNear(hs, v, ts, dir);
      if (!ev) throw new AmiError("M_NOT_FOUND", `No event found ${dir === "f" ? "after" : "before"} ${ts}`);
      return json({ event_id: ev.eventId, origin_server_ts: ev.originServerTs });
    },
  },
  /** GET /_matrix/client/v3/rooms/{roomId}/initialSync (`limit`: messages, as Synapse reads it) */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/rooms/{roomId}/initialSync"],
    auth: "required",
    async handler(req) {
      const roomId = requireRoomId(req.params.roomId);
      const limit = Math.min(queryInt(req.query, "limit", INITIAL_SYNC_MESSAGES, 0), MAX_MESSAGES);
      return json(await roomInitialSync(req.hs, req.requester!, roomId, limit));
    },
  },
];
