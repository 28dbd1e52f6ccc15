/** Sending and redacting events (spec room_send.yaml, redaction.yaml). */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { isValidEventId } from "../events/ids.ts";
import { json, type Route } from "../http/types.ts";
import { assertNotSuspended } from "../service/moderation.ts";
import { requireRoomId } from "../service/room-access.ts";
import { shadowEventId } from "../service/shadow-ban.ts";
import { parseBody } from "../validate.ts";

const redactBody = z.object({ reason: z.string().optional() });

function txnIdOf(txnId: string): string {
  if (!txnId || Buffer.byteLength(txnId) > 255) throw new AmiError("M_INVALID_PARAM", "Invalid transaction ID");
  return txnId;
}

export const routes: Route[] = [
  /** PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId} */
  {
    method: "PUT",
    paths: ["/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}"],
    auth: "required",
    refuseSuspended: true,
    rateLimit: true,
    async handler(req) {
      const roomId = requireRoomId(req.params.roomId);
      const r = req.requester!;
      const shadow = shadowEventId(r);
      if (shadow) return json({ event_id: shadow });
      const { eventId } = await req.hs.rooms.sendEvent({
        roomId,
        sender: r.userId,
        type: req.params.eventType,
        content: req.body,
        txn: {
          deviceId: r.deviceId,
          scope: `send/${roomId}/${req.params.eventType}`,
          txnId: txnIdOf(req.params.txnId),
        },
      });
      return json({ event_id: eventId });
    },
  },
  /** PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId} */
  {
    method: "PUT",
    paths: ["/_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}"],
    auth: "required",
    rateLimit: true,
    async handler(req) {
      const roomId = requireRoomId(req.params.roomId);
      const target = req.params.eventId;
      if (!isValidEventId(target)) throw new AmiError("M_INVALID_PARAM", `Invalid event ID '${target}'`);
      const { reason } = parseBody(redactBody, req.body);
      const r = req.requester!;
      // A suspended account may redact its own events only (spec "Account suspension").
      if (r.suspended && (await req.hs.store.events.getEvent(target))?.sender !== r.userId) assertNotSuspended(r);
      const shadow = shadowEventId(r);
      if (shadow) return json({ event_id: shadow });
      const { eventId } = await req.hs.rooms.sendEvent({
        roomId,
        sender: r.userId,
        type: "m.room.redaction",
        content: reason === undefined ? {} : { reason },
        redacts: target,
        txn: { deviceId: r.deviceId, scope: `redact/${roomId}/${target}`, txnId: txnIdOf(req.params.txnId) },
      });
      return json({ event_id: eventId });
    },
  },
];
