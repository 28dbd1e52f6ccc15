/** Spec section "Typing Notifications" (typing.yaml). */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { sendTypingEdu } from "../federation/edus-out.ts";
import { json, type Route } from "../http/types.ts";
import { MAX_TYPING_TIMEOUT_MS } from "../service/typing.ts";
import { parseBody } from "../validate.ts";

const body = z.object({ typing: z.boolean(), timeout: z.number().int().min(0).optional() });

export const routes: Route[] = [
  /** PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId} */
  {
    method: "PUT",
    paths: ["/_matrix/client/v3/rooms/{roomId}/typing/{userId}"],
    auth: "required",
    rateLimit: true,
    async handler(req) {
      const { roomId, userId } = req.params;
      if (userId !== req.requester!.userId)
        throw new AmiError("M_FORBIDDEN", "Cannot set the typing state of another user");
      const b = parseBody(body, req.body);
      const m = await req.hs.store.events.getMembership(roomId, userId);
      if (m?.membership !== "join") throw new AmiError("M_FORBIDDEN", "You are not joined to this room");
      req.hs.typing.setTyping(roomId, userId, b.typing, b.timeout ?? MAX_TYPING_TIMEOUT_MS);
      sendTypingEdu(req.hs, roomId, userId, b.typing);
      return json({});
    },
  },
];
