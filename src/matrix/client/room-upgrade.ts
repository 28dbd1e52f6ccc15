/** Spec section "Room Upgrades" (room_upgrades.yaml). The work is service/room-upgrade.ts. */
import { z } from "zod";
import { json, type Route } from "../http/types.ts";
import { requireRoomId } from "../service/room-access.ts";
import { upgradeRoom } from "../service/room-upgrade.ts";
import { parseBody } from "../validate.ts";

const body = z.object({ new_version: z.string(), additional_creators: z.array(z.string()).optional() });

export const routes: Route[] = [
  /** POST /_matrix/client/v3/rooms/{roomId}/upgrade */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/rooms/{roomId}/upgrade"],
    auth: "required",
    rateLimit: true,
    async handler(req) {
      const roomId = requireRoomId(req.params.roomId);
      const { new_version: version, additional_creators: creators } = parseBody(body, req.body);
      const { replacementRoom } = await upgradeRoom(req.hs, req.requester!.userId, roomId, version, creators);
      return json({ replacement_room: replacementRoom });
    },
  },
];
