/** Spec section "Presence" (presence.yaml). */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { parseUserId } from "../events/ids.ts";
import { json, type Route } from "../http/types.ts";
import { parseBody } from "../http/validate.ts";
import { getPresence, PRESENCE_STATES, setPresence } from "../service/sync-presence.ts";

const body = z.object({ presence: z.enum(PRESENCE_STATES), status_msg: z.string().max(1024).nullable().optional() });

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
      if (!(await req.hs.store.getUser(userId))) throw new AmiError("M_NOT_FOUND", "Unknown user");
      return json(await getPresence(req.hs, userId));
    },
  },
];
