/** Spec section "Fully read markers" (read_markers.yaml). */
import { z } from "zod";
import { json, type Route } from "../http/types.ts";
import { setFullyRead, setReceipt } from "../service/sync/receipts.ts";
import { parseBody } from "../validate.ts";

const body = z.object({
  "m.fully_read": z.string().min(1).optional(),
  "m.read": z.string().min(1).optional(),
  "m.read.private": z.string().min(1).optional(),
});

export const routes: Route[] = [
  /** POST /_matrix/client/v3/rooms/{roomId}/read_markers */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/rooms/{roomId}/read_markers"],
    auth: "required",
    rateLimit: true,
    async handler(req) {
      const { roomId } = req.params;
      const userId = req.requester!.userId;
      const b = parseBody(body, req.body);
      if (b["m.fully_read"]) await setFullyRead(req.hs, roomId, userId, b["m.fully_read"]);
      for (const type of ["m.read", "m.read.private"] as const) {
        const eventId = b[type];
        if (eventId) await setReceipt(req.hs, { roomId, userId, type, eventId, threadId: null });
      }
      return json({});
    },
  },
];
