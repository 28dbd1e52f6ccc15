/** Room membership (spec joining.yaml, leaving.yaml, inviting.yaml, kicking.yaml, banning.yaml, knocking.yaml). */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { parseUserId } from "../events/ids.ts";
import { json, type Route } from "../http/types.ts";
import { parseBody } from "../http/validate.ts";
import { forgetRoom, requireRoom, requireRoomId, resolveRoom } from "../service/room-access.ts";

const reasonBody = z.object({ reason: z.string().optional() });
const targetBody = z.object({ user_id: z.string(), reason: z.string().optional() });

function targetOf(body: unknown): { userId: string; reason?: string } {
  const b = parseBody(targetBody, body);
  if (!parseUserId(b.user_id)) throw new AmiError("M_INVALID_PARAM", `Invalid user ID '${b.user_id}'`);
  return { userId: b.user_id, reason: b.reason };
}

async function currentMembership(
  req: Parameters<Route["handler"]>[0],
  roomId: string,
  userId: string,
): Promise<string> {
  return (await req.hs.store.getMembership(roomId, userId))?.membership ?? "leave";
}

export const routes: Route[] = [
  /** POST /_matrix/client/v3/join/{roomIdOrAlias} and POST /_matrix/client/v3/rooms/{roomId}/join */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/join/{roomIdOrAlias}", "/_matrix/client/v3/rooms/{roomId}/join"],
    auth: "required",
    rateLimit: true,
    async handler(req) {
      const { reason } = parseBody(reasonBody, req.body);
      const roomId = req.params.roomId
        ? requireRoomId(req.params.roomId)
        : await resolveRoom(req.hs, req.params.roomIdOrAlias);
      await requireRoom(req.hs, roomId);
      const me = req.requester!.userId;
      await req.hs.rooms.setMembership({ roomId, sender: me, target: me, membership: "join", reason });
      return json({ room_id: roomId });
    },
  },
  /** POST /_matrix/client/v3/knock/{roomIdOrAlias} */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/knock/{roomIdOrAlias}"],
    auth: "required",
    rateLimit: true,
    async handler(req) {
      const { reason } = parseBody(reasonBody, req.body);
      const roomId = await resolveRoom(req.hs, req.params.roomIdOrAlias);
      await requireRoom(req.hs, roomId);
      const me = req.requester!.userId;
      await req.hs.rooms.setMembership({ roomId, sender: me, target: me, membership: "knock", reason });
      return json({ room_id: roomId });
    },
  },
  /** POST /_matrix/client/v3/rooms/{roomId}/leave */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/rooms/{roomId}/leave"],
    auth: "required",
    async handler(req) {
      const { reason } = parseBody(reasonBody, req.body);
      const roomId = requireRoomId(req.params.roomId);
      await requireRoom(req.hs, roomId);
      const me = req.requester!.userId;
      await req.hs.rooms.setMembership({ roomId, sender: me, target: me, membership: "leave", reason });
      return json({});
    },
  },
  /** POST /_matrix/client/v3/rooms/{roomId}/forget */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/rooms/{roomId}/forget"],
    auth: "required",
    async handler(req) {
      await forgetRoom(req.hs, req.requester!.userId, req.params.roomId);
      return json({});
    },
  },
  /** POST /_matrix/client/v3/rooms/{roomId}/invite */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/rooms/{roomId}/invite"],
    auth: "required",
    rateLimit: true,
    async handler(req) {
      if (req.body && typeof req.body === "object" && "medium" in req.body && !("user_id" in req.body)) {
        throw new AmiError("M_UNRECOGNIZED", "Third-party invites are not supported");
      }
      const t = targetOf(req.body);
      const roomId = requireRoomId(req.params.roomId);
      await requireRoom(req.hs, roomId);
      await req.hs.rooms.setMembership({
        roomId,
        sender: req.requester!.userId,
        target: t.userId,
        membership: "invite",
        reason: t.reason,
      });
      return json({});
    },
  },
  /** POST /_matrix/client/v3/rooms/{roomId}/kick */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/rooms/{roomId}/kick"],
    auth: "required",
    async handler(req) {
      const t = targetOf(req.body);
      const roomId = requireRoomId(req.params.roomId);
      await requireRoom(req.hs, roomId);
      // A kick removes someone who is in (or invited to, or knocking on) the room; it is not an unban.
      if (!["join", "invite", "knock"].includes(await currentMembership(req, roomId, t.userId))) {
        throw new AmiError("M_FORBIDDEN", `${t.userId} is not in the room`);
      }
      await req.hs.rooms.setMembership({
        roomId,
        sender: req.requester!.userId,
        target: t.userId,
        membership: "leave",
        reason: t.reason,
      });
      return json({});
    },
  },
  /** POST /_matrix/client/v3/rooms/{roomId}/ban */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/rooms/{roomId}/ban"],
    auth: "required",
    async handler(req) {
      const t = targetOf(req.body);
      const roomId = requireRoomId(req.params.roomId);
      await requireRoom(req.hs, roomId);
      await req.hs.rooms.setMembership({
        roomId,
        sender: req.requester!.userId,
        target: t.userId,
        membership: "ban",
        reason: t.reason,
      });
      return json({});
    },
  },
  /** POST /_matrix/client/v3/rooms/{roomId}/unban */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/rooms/{roomId}/unban"],
    auth: "required",
    async handler(req) {
      const t = targetOf(req.body);
      const roomId = requireRoomId(req.params.roomId);
      await requireRoom(req.hs, roomId);
      if ((await currentMembership(req, roomId, t.userId)) !== "ban")
        throw new AmiError("M_FORBIDDEN", `${t.userId} is not banned`);
      await req.hs.rooms.setMembership({
        roomId,
        sender: req.requester!.userId,
        target: t.userId,
        membership: "leave",
        reason: t.reason,
      });
      return json({});
    },
  },
];
