/** Room state (spec room_state.yaml for PUT, rooms.yaml for the GETs). */
import { AmiError } from "../../core/errors.ts";
import { canonicalJson } from "../events/canonical-json.ts";
import { isValidRoomAlias } from "../events/ids.ts";
import type { EventContent } from "../events/types.ts";
import type { Homeserver } from "../hs.ts";
import { json, type Route } from "../http/types.ts";
import { requireRoom, requireRoomId } from "../service/room-access.ts";
import { shadowEventId } from "../service/shadow-ban.ts";
import { MAX_STREAM, readableRoom, readableState, stateBound } from "../service/visibility.ts";

/** m.room.canonical_alias may only name aliases that exist and point at this room (M_BAD_ALIAS in the spec). */
async function checkCanonicalAlias(hs: Homeserver, roomId: string, content: EventContent): Promise<void> {
  const names: unknown[] = [];
  if (content.alias !== undefined && content.alias !== null) names.push(content.alias);
  if (content.alt_aliases !== undefined) {
    if (!Array.isArray(content.alt_aliases)) throw new AmiError("M_BAD_JSON", "'alt_aliases' must be an array");
    names.push(...content.alt_aliases);
  }
  for (const a of names) {
    if (typeof a !== "string" || !isValidRoomAlias(a))
      throw new AmiError("M_INVALID_PARAM", `Invalid room alias '${String(a)}'`);
    const found = await hs.store.rooms.getAlias(a);
    if (found?.roomId !== roomId) throw new AmiError("M_BAD_ALIAS", `Room alias ${a} does not point to this room`);
  }
}

export const routes: Route[] = [
  /** GET /_matrix/client/v3/rooms/{roomId}/state */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/rooms/{roomId}/state"],
    auth: "required",
    async handler(req) {
      const roomId = requireRoomId(req.params.roomId);
      const state = await readableState(req.hs, await readableRoom(req.hs, roomId, req.requester!.userId));
      return json(await req.hs.clientEvents(state, req.requester));
    },
  },
  /** GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey} (`?format=event` for the whole event) */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey?}"],
    auth: "required",
    async handler(req) {
      const roomId = requireRoomId(req.params.roomId);
      const { eventType, stateKey = "" } = req.params;
      const format = req.query.get("format") ?? "content";
      if (format !== "content" && format !== "event")
        throw new AmiError("M_INVALID_PARAM", "'format' must be 'content' or 'event'");
      const at = stateBound(await readableRoom(req.hs, roomId, req.requester!.userId));
      const ev =
        at === MAX_STREAM
          ? await req.hs.store.events.getCurrentStateEvent(roomId, eventType, stateKey)
          : ((await req.hs.store.events.getStateAt(roomId, at, [eventType])).find((e) => e.stateKey === stateKey) ??
            null);
      if (!ev) throw new AmiError("M_NOT_FOUND", `No ${eventType} state event with key '${stateKey}'`);
      const [client] = await req.hs.clientEvents([ev], req.requester);
      return json(format === "event" ? client : client.content);
    },
  },
  /** PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey} */
  {
    method: "PUT",
    paths: ["/_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey?}"],
    auth: "required",
    refuseSuspended: true,
    async handler(req) {
      const roomId = requireRoomId(req.params.roomId);
      const { eventType, stateKey = "" } = req.params;
      const me = req.requester!.userId;
      await requireRoom(req.hs, roomId);
      const content = req.body;
      if (eventType === "m.room.canonical_alias") await checkCanonicalAlias(req.hs, roomId, content);
      // Setting the same content again is a no-op that answers with the event already in place.
      const current = await req.hs.store.events.getCurrentStateEvent(roomId, eventType, stateKey);
      if (current && current.sender === me && canonicalJson(current.pdu.content ?? {}) === canonicalJson(content)) {
        if ((await req.hs.store.events.getMembership(roomId, me))?.membership === "join")
          return json({ event_id: current.eventId });
      }
      const shadow = shadowEventId(req.requester);
      if (shadow) return json({ event_id: shadow });
      const { eventId } = await req.hs.rooms.sendEvent({ roomId, sender: me, type: eventType, stateKey, content });
      return json({ event_id: eventId });
    },
  },
];
