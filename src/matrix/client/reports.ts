/**
 * Reporting content (spec report_content.yaml): events, rooms and users, kept for the server's admins
 * (admin-reports.ts). An event can be reported only by a member of its room who may see it: anyone else gets the
 * same 404 as for an event that does not exist, so a report does not reveal what the reporter cannot read.
 */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { isValidEventId } from "../events/ids.ts";
import { json, type Route } from "../http/types.ts";
import { parseLocalUserId } from "../service/registration.ts";
import { requireRoomId } from "../service/room-access.ts";
import { isVisible, readableRoom } from "../service/visibility.ts";
import { parseBody } from "../validate.ts";

const MAX_REASON = 4096;
const eventBody = z.object({
  reason: z.string().max(MAX_REASON).optional(),
  // Removed from the spec in v1.18, still sent by older clients (and Synapse still records it).
  score: z.number().int().min(-100).max(0).optional(),
});
const reasonBody = z.object({ reason: z.string().max(MAX_REASON) });

export const routes: Route[] = [
  /** POST /_matrix/client/v3/rooms/{roomId}/report/{eventId} */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/rooms/{roomId}/report/{eventId}"],
    auth: "required",
    rateLimit: true,
    async handler(req) {
      const { hs } = req;
      const roomId = requireRoomId(req.params.roomId);
      const eventId = req.params.eventId;
      if (!isValidEventId(eventId)) throw new AmiError("M_INVALID_PARAM", `Invalid event ID '${eventId}'`);
      const b = parseBody(eventBody, req.body);
      const me = req.requester!.userId;
      const notFound = () => new AmiError("M_NOT_FOUND", "The event was not found or you are not joined to the room.");
      const v = await readableRoom(hs, roomId, me).catch((e) => {
        if (e instanceof AmiError && (e.code === "M_FORBIDDEN" || e.code === "M_NOT_FOUND")) throw notFound();
        throw e;
      });
      const ev = await hs.store.events.getEvent(eventId);
      if (v.membership !== "join" || !ev || ev.roomId !== roomId || !isVisible(v.ranges, ev.stream)) throw notFound();
      const id = await hs.store.reports.addReport({
        kind: "event",
        receivedTs: Date.now(),
        userId: me,
        roomId,
        eventId,
        targetUserId: ev.sender,
        reason: b.reason ?? null,
        score: b.score ?? null,
      });
      hs.log.info("event reported", { id, roomId, eventId, by: me });
      return json({});
    },
  },
  /** POST /_matrix/client/v3/rooms/{roomId}/report */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/rooms/{roomId}/report"],
    auth: "required",
    rateLimit: true,
    async handler(req) {
      const { hs } = req;
      const roomId = requireRoomId(req.params.roomId);
      const b = parseBody(reasonBody, req.body);
      if (!(await hs.store.rooms.getRoom(roomId))) throw new AmiError("M_NOT_FOUND", "The room was not found.");
      const me = req.requester!.userId;
      const id = await hs.store.reports.addReport({
        kind: "room",
        receivedTs: Date.now(),
        userId: me,
        roomId,
        eventId: null,
        targetUserId: null,
        reason: b.reason,
        score: null,
      });
      hs.log.info("room reported", { id, roomId, by: me });
      return json({});
    },
  },
  /** POST /_matrix/client/v3/users/{userId}/report */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/users/{userId}/report"],
    auth: "required",
    rateLimit: true,
    async handler(req) {
      const { hs } = req;
      const target = req.params.userId;
      const b = parseBody(reasonBody, req.body);
      // No federation: only this server's users can be known here.
      const known =
        target.startsWith("@") && parseLocalUserId(hs, target).local && (await hs.store.accounts.getUser(target));
      if (!known) throw new AmiError("M_NOT_FOUND", "The user was not found.");
      const me = req.requester!.userId;
      const id = await hs.store.reports.addReport({
        kind: "user",
        receivedTs: Date.now(),
        userId: me,
        roomId: null,
        eventId: null,
        targetUserId: target,
        reason: b.reason,
        score: null,
      });
      hs.log.info("user reported", { id, target, by: me });
      return json({});
    },
  },
];
