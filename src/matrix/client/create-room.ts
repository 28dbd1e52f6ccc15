/** Room creation (spec create_room.yaml). */
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
      const { roomId } = await req.hs.rooms.createRoom(req.requester!.userId, req.body);
      return json({ room_id: roomId });
    },
  },
];
