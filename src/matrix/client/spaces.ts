/**
 * Spaces and room previews: the space hierarchy (spec space_hierarchy.yaml) and room summaries (spec
 * room_summary.yaml, MSC3266). Who may see a room is room-preview.ts's rule, the same for both.
 */
import { AmiError } from "../../core/errors.ts";
import { json, type Route } from "../http/types.ts";
import { requireRoomId, resolveRoom } from "../service/room-access.ts";
import { roomPreview } from "../service/room-preview.ts";
import { spaceHierarchy } from "../service/space-hierarchy.ts";
import { queryInt } from "../validate.ts";

/** Rooms per page: Synapse's default; a larger `limit` is cut to MAX_LIMIT. */
const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 100;
/** How deep a walk goes at most (and by default). */
const MAX_DEPTH = 50;

function queryBool(q: URLSearchParams, name: string): boolean {
  const v = q.get(name);
  if (v === null || v === "false") return false;
  if (v === "true") return true;
  throw new AmiError("M_INVALID_PARAM", `'${name}' must be 'true' or 'false'`);
}

export const routes: Route[] = [
  /** GET /_matrix/client/v1/rooms/{roomId}/hierarchy */
  {
    method: "GET",
    paths: ["/_matrix/client/v1/rooms/{roomId}/hierarchy"],
    auth: "required",
    rateLimit: true,
    async handler(req) {
      const q = req.query;
      const page = await spaceHierarchy(req.hs, {
        roomId: requireRoomId(req.params.roomId),
        userId: req.requester!.userId,
        suggestedOnly: queryBool(q, "suggested_only"),
        maxDepth: Math.min(queryInt(q, "max_depth", MAX_DEPTH, 0), MAX_DEPTH),
        limit: Math.min(queryInt(q, "limit", DEFAULT_LIMIT, 1), MAX_LIMIT),
        from: q.get("from") ?? undefined,
      });
      return json(page);
    },
  },
  /** GET /_matrix/client/v1/room_summary/{roomIdOrAlias} (`via` is accepted; every room is local) */
  {
    method: "GET",
    paths: ["/_matrix/client/v1/room_summary/{roomIdOrAlias}"],
    auth: "optional",
    rateLimit: true,
    async handler(req) {
      const roomId = await resolveRoom(req.hs, req.params.roomIdOrAlias);
      const userId = req.requester?.userId ?? null;
      const found = await roomPreview(req.hs, userId, roomId);
      if (!found) throw new AmiError("M_NOT_FOUND", "Room not found or is not accessible");
      if (userId === null) return json(found.preview);
      const membership = found.state.find((e) => e.type === "m.room.member" && e.stateKey === userId)?.pdu.content
        ?.membership;
      return json({ ...found.preview, membership: typeof membership === "string" ? membership : "leave" });
    },
  },
];
