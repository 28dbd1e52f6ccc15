/**
 * GET /_matrix/federation/v1/hierarchy/{roomId} (spec server-server space_hierarchy.yaml): a space and its direct
 * children for another server, unpaginated. A room is accessible to the requesting server when it could peek or
 * join it: an open join rule or world_readable history (room-preview.ts' rule for an anonymous reader), a
 * restricted room (the asking server checks the allowed rooms itself; they are listed), or a room where it has a
 * joined member. The root must be accessible and admit the server in its m.room.server_acl (else 404 / 403);
 * known children that are not accessible, or whose ACL denies the server, are `inaccessible_children`; children this
 * server does not know are left out, as the spec says.
 */
import { AmiError } from "../../core/errors.ts";
import { isValidRoomId, serverNameOf } from "../events/ids.ts";
import type { Homeserver } from "../hs.ts";
import type { Route } from "../http/types.ts";
import { mayPreview, previewOfState, type RoomPreview } from "../service/room-preview.ts";
import { childEvents } from "../service/space-hierarchy.ts";
import type { StoredEvent } from "../store/types.ts";
import { aclAllows } from "./access.ts";
import { signedRoute } from "./routes.ts";

/** Most children one answer describes (each costs a state read). */
export const MAX_HIERARCHY_CHILDREN = 200;

type Access = { preview: RoomPreview; state: StoredEvent[] } | "unknown" | "inaccessible" | "denied";

async function accessOf(hs: Homeserver, origin: string, roomId: string): Promise<Access> {
  const room = await hs.store.rooms.getRoom(roomId);
  if (!room) return "unknown";
  const state = await hs.store.events.getCurrentState(roomId);
  const acl = state.find((e) => e.type === "m.room.server_acl" && e.stateKey === "");
  if (!aclAllows(acl?.pdu.content, origin)) return "denied";
  const rule = state.find((e) => e.type === "m.room.join_rules" && e.stateKey === "")?.pdu.content?.join_rule;
  const ok =
    (await mayPreview(hs, null, state)) ||
    rule === "restricted" ||
    rule === "knock_restricted" ||
    state.some(
      (e) =>
        e.type === "m.room.member" && serverNameOf(e.stateKey ?? "") === origin && e.pdu.content?.membership === "join",
    );
  return ok ? { preview: previewOfState(roomId, room.version, state), state } : "inaccessible";
}

const stripped = (e: StoredEvent) => ({
  type: e.type,
  state_key: e.stateKey ?? "",
  content: e.pdu.content ?? {},
  sender: e.sender,
  origin_server_ts: e.originServerTs,
});

export const hierarchyRoutes: Route[] = [
  signedRoute({
    method: "GET",
    paths: ["/_matrix/federation/v1/hierarchy/{roomId}"],
    async handler(req, origin) {
      const { roomId } = req.params;
      if (!isValidRoomId(roomId)) throw new AmiError("M_INVALID_PARAM", "roomId is not a room ID");
      const so = req.query.get("suggested_only");
      if (so !== null && so !== "true" && so !== "false")
        throw new AmiError("M_INVALID_PARAM", "suggested_only must be true or false");
      const root = await accessOf(req.hs, origin, roomId);
      if (root === "denied") throw new AmiError("M_FORBIDDEN", `Server ${origin} is denied by the room's server ACL`);
      if (typeof root === "string")
        throw new AmiError("M_NOT_FOUND", `Room ${roomId} is unknown or cannot be peeked or joined by ${origin}`);
      const isSpace = root.preview.room_type === "m.space";
      const childEvs = isSpace ? childEvents(root.state, so === "true").slice(0, MAX_HIERARCHY_CHILDREN) : [];
      const children: (RoomPreview & { children_state: ReturnType<typeof stripped>[] })[] = [];
      const inaccessible: string[] = [];
      for (const c of childEvs) {
        const childId = c.stateKey ?? "";
        const a = await accessOf(req.hs, origin, childId);
        if (a === "unknown") continue;
        if (typeof a === "string") inaccessible.push(childId);
        else {
          const grand = a.preview.room_type === "m.space" ? childEvents(a.state, so === "true") : [];
          children.push({ ...a.preview, children_state: grand.map(stripped) });
        }
      }
      return {
        json: {
          room: { ...root.preview, children_state: childEvs.map(stripped) },
          children,
          inaccessible_children: inaccessible,
        },
      };
    },
  }),
];
