/** Room creation (spec create_room.yaml). */
import { randomString } from "../events/ids.ts";
import { json, type Route } from "../http/types.ts";

export const routes: Route[] = [
  /** POST /_matrix/client/v3/createRoom */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/createRoom"],
    auth: "required",
    refuseSuspended: true,
    rateLimit: true,
    async handler(req) {
      const { hs, body } = req;
      // As Synapse: a shadow-banned user's room with invites is not made; the answer names a room that is not.
      const invites = Array.isArray(body?.invite) && body.invite.length > 0;
      const invites3pid = Array.isArray(body?.invite_3pid) && body.invite_3pid.length > 0;
      if (req.requester!.shadowBanned && (invites || invites3pid))
        return json({ room_id: `!${randomString(18)}:${hs.serverName}` });
      const { roomId } = await hs.rooms.createRoom(req.requester!.userId, body);
      return json({ room_id: roomId });
    },
  },
];
