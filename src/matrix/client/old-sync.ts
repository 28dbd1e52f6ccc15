/** The deprecated event stream and initial sync (spec old_sync.yaml, peeking_events.yaml): service/old-sync.ts. */
import { AmiError } from "../../core/errors.ts";
import { isValidEventId } from "../events/ids.ts";
import { json, type Route } from "../http/types.ts";
import { eventStream, initialSync, visibleEventById } from "../service/old-sync.ts";
import { queryInt } from "../validate.ts";

/** Synapse's default wait for /events without `timeout`. */
const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_INITIAL_LIMIT = 1000;

export const routes: Route[] = [
  /**
   * GET /_matrix/client/v3/events — both the deprecated event stream (old_sync.yaml) and, with `room_id`, the
   * peeking form (peeking_events.yaml "/events "): they share the path.
   */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/events"],
    auth: "required",
    holdsOpen: true,
    async handler(req) {
      const q = req.query;
      const timeoutMs = Math.min(queryInt(q, "timeout", DEFAULT_TIMEOUT_MS, 0), req.hs.config.sync.maxTimeoutMs);
      const page = await eventStream(req.hs, req.requester!, {
        from: q.get("from"),
        timeoutMs,
        roomId: q.get("room_id"),
        signal: req.signal,
      });
      return json(page);
    },
  },
  /** GET /_matrix/client/v3/initialSync */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/initialSync"],
    auth: "required",
    async handler(req) {
      const q = req.query;
      const archived = q.get("archived");
      if (archived !== null && archived !== "true" && archived !== "false")
        throw new AmiError("M_INVALID_PARAM", "'archived' must be true or false");
      const limit = Math.min(queryInt(q, "limit", 10, 0), MAX_INITIAL_LIMIT);
      return json(await initialSync(req.hs, req.requester!, { limit, archived: archived === "true" }));
    },
  },
  /** GET /_matrix/client/v3/events/{eventId} */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/events/{eventId}"],
    auth: "required",
    async handler(req) {
      const id = req.params.eventId;
      if (!isValidEventId(id)) throw new AmiError("M_INVALID_PARAM", `Invalid event ID '${id.slice(0, 100)}'`);
      return json(await visibleEventById(req.hs, req.requester!, id));
    },
  },
];
