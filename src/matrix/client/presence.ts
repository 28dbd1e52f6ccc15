/** Spec section "Presence" (presence.yaml). */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { parseUserId } from "../events/ids.ts";
import type { Homeserver } from "../hs.ts";
import { json, type Route } from "../http/types.ts";
import { getPresence, PRESENCE_STATES, setPresence } from "../service/sync/presence.ts";
import { parseBody } from "../validate.ts";

const body = z.object({ presence: z.enum(PRESENCE_STATES), status_msg: z.string().max(1024).nullable().optional() });

/** Are both users joined to some room? */
async function shareRoom(hs: Homeserver, a: string, b: string): Promise<boolean> {
  const [ra, rb] = await Promise.all([hs.store.events.getRoomsForUser(a), hs.store.events.getRoomsForUser(b)]);
  const joined = new Set(ra.filter((m) => m.membership === "join").map((m) => m.roomId));
  return rb.some((m) => m.membership === "join" && joined.has(m.roomId));
}

export const routes: Route[] = [
  /** PUT /_matrix/client/v3/presence/{userId}/status */
  {
    method: "PUT",
    paths: ["/_matrix/client/v3/presence/{userId}/status"],
    auth: "required",
    rateLimit: true,
    async handler(req) {
      const { userId } = req.params;
      if (userId !== req.requester!.userId)
        throw new AmiError("M_FORBIDDEN", "Cannot set the presence of another user");
      const b = parseBody(body, req.body);
      if (!req.hs.config.presence.enabled) return json({});
      await setPresence(req.hs, userId, b.presence, b.status_msg === undefined ? undefined : b.status_msg);
      return json({});
    },
  },
  /** GET /_matrix/client/v3/presence/{userId}/status */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/presence/{userId}/status"],
    auth: "required",
    async handler(req) {
      const { userId } = req.params;
      if (!parseUserId(userId)) throw new AmiError("M_INVALID_PARAM", "Invalid user ID");
      // Asked before the existence check: a stranger's answer must not tell whether the account exists.
      const me = req.requester!.userId;
      if (userId !== me && !req.hs.config.presence.visibleToAll && !(await shareRoom(req.hs, me, userId)))
        throw new AmiError("M_FORBIDDEN", "You are not allowed to see their presence");
      // A remote user's presence is what their server sent us (m.presence EDUs; offline when none came).
      if (parseUserId(userId)?.server === req.hs.serverName && !(await req.hs.store.accounts.getUser(userId)))
        throw new AmiError("M_NOT_FOUND", "Unknown user");
      return json(await getPresence(req.hs, userId));
    },
  },
];
