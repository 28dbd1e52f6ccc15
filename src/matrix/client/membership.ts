/** Room membership (spec joining.yaml, leaving.yaml, inviting.yaml, kicking.yaml, banning.yaml, knocking.yaml). */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { parseUserId } from "../events/ids.ts";
import { json, type Route } from "../http/types.ts";
import { forgetRoom, requireRoom, requireRoomId, resolveRoom } from "../service/room-access.ts";
import { parseBody } from "../validate.ts";

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
  return (await req.hs.store.events.getMembership(roomId, userId))?.membership ?? "leave";
}

export const routes: Route[] = [
  /** POST /_matrix/client/v3/join/{roomIdOrAlias} and POST /_matrix/client/v3/rooms/{roomId}/join */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/join/{roomIdOrAlias}", "/_matrix/client/v3/rooms/{roomId}/join"],
    auth: "required",
    refuseSuspended: true,
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
    refuseSuspended: true,
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
  targetRoute("invite", "invite", { rateLimit: true, allowThirdParty: false }),
  /** POST /_matrix/client/v3/rooms/{roomId}/kick — removes someone in, invited to or knocking on the room; not an unban. */
  targetRoute("kick", "leave", { from: ["join", "invite", "knock"], notFrom: "is not in the room" }),
  /** POST /_matrix/client/v3/rooms/{roomId}/ban */
  targetRoute("ban", "ban", {}),
  /** POST /_matrix/client/v3/rooms/{roomId}/unban */
  targetRoute("unban", "leave", { from: ["ban"], notFrom: "is not banned" }),
];

/** invite, kick, ban and unban share one shape: a target user (and reason) in the body, a membership for them. */
function targetRoute(
  action: string,
  membership: "invite" | "leave" | "ban",
  opts: { rateLimit?: boolean; allowThirdParty?: boolean; from?: string[]; notFrom?: string },
): Route {
  return {
    method: "POST",
    paths: [`/_matrix/client/v3/rooms/{roomId}/${action}`],
    auth: "required",
    // A suspended account may not invite (spec "Account suspension"); it may still kick, ban and unban.
    refuseSuspended: membership === "invite",
    rateLimit: opts.rateLimit,
    async handler(req) {
      if (opts.allowThirdParty === false && req.body && "medium" in req.body && !("user_id" in req.body)) {
        throw new AmiError("M_FORBIDDEN", "Third-party invites are not supported (no identity server)");
      }
      const t = targetOf(req.body);
      const roomId = requireRoomId(req.params.roomId);
      await requireRoom(req.hs, roomId);
      if (opts.from && !opts.from.includes(await currentMembership(req, roomId, t.userId))) {
        throw new AmiError("M_FORBIDDEN", `${t.userId} ${opts.notFrom}`);
      }
      const sender = req.requester!.userId;
      // A shadow-banned user's invites are answered and dropped (service/shadow-ban.ts).
      if (membership === "invite" && req.requester!.shadowBanned) return json({});
      await req.hs.rooms.setMembership({ roomId, sender, target: t.userId, membership, reason: t.reason });
      return json({});
    },
  };
}
