/**
 * The resident side of joins and leaves over federation (spec server-server joins-v2.yaml, leaving-v2.yaml): the
 * event another server filled from our make_join / make_leave template comes back here, signed by it. It must be
 * the membership the route names, for a user of the origin, with the event ID of the path; then it goes through
 * the one PDU pipeline (pdu-in.ts, as a single PDU of the origin) and must end up in the timeline — rejected or
 * soft-failed is a 403 and nothing is applied. send_join answers the state before the join and its auth chain, so
 * the joining server can build the room; for a restricted join the event is first signed by us (our user vouches
 * for it in `join_authorised_via_users_server`) and that signed event is returned.
 */
import { AmiError } from "../../core/errors.ts";
import { signEvent } from "../events/event-signing.ts";
import { eventIdFor } from "../events/hashing.ts";
import { isValidEventId, isValidRoomId, parseUserId } from "../events/ids.ts";
import type { Homeserver } from "../hs.ts";
import type { MatrixRequest, Route } from "../http/types.ts";
import { VIA_KEY } from "../service/restricted-join.ts";
import type { DagEvent, RoomRow } from "../store/types.ts";
import { sendPduOut } from "./edus-out.ts";
import { aclAllows } from "./room-reads.ts";
import { signedRoute } from "./routes.ts";

async function residentRoom(hs: Homeserver, roomId: string, origin: string): Promise<RoomRow> {
  if (!isValidRoomId(roomId)) throw new AmiError("M_INVALID_PARAM", "roomId is not a room ID");
  const room = await hs.store.rooms.getRoom(roomId);
  if (!room) throw new AmiError("M_NOT_FOUND", `Room ${roomId} is not known to this server`);
  const acl = await hs.store.events.getCurrentStateEvent(roomId, "m.room.server_acl", "");
  if (!aclAllows(acl?.pdu.content, origin))
    throw new AmiError("M_FORBIDDEN", `Server ${origin} is denied by the room's server ACL`);
  return room;
}

/**
 * The membership event of a send_* request, checked (shape, membership, user of the origin, IDs of the path) and
 * run through the PDU pipeline; the stored timeline event. Throws a 4xx AmiError, nothing applied, otherwise.
 */
async function acceptMembership(
  req: MatrixRequest,
  origin: string,
  membership: "join" | "leave" | "knock",
): Promise<{ room: RoomRow; event: DagEvent; pdu: Record<string, unknown> }> {
  const { hs } = req;
  const { roomId, eventId } = req.params;
  if (!isValidEventId(eventId)) throw new AmiError("M_INVALID_PARAM", "eventId is not an event ID");
  const room = await residentRoom(hs, roomId, origin);
  const body = req.body;
  if (!body || typeof body !== "object" || Array.isArray(body))
    throw new AmiError("M_BAD_JSON", "The body must be the signed membership event");
  let pdu = body as Record<string, unknown>;
  if (pdu.type !== "m.room.member") throw new AmiError("M_BAD_JSON", "The event is not an m.room.member event");
  if (pdu.room_id !== roomId) throw new AmiError("M_BAD_JSON", "The event's room_id is not the room of the path");
  const content = pdu.content as Record<string, unknown> | undefined;
  if (!content || content.membership !== membership)
    throw new AmiError("M_BAD_JSON", `The event's membership is not '${membership}'`);
  if (typeof pdu.sender !== "string" || pdu.state_key !== pdu.sender)
    throw new AmiError("M_BAD_JSON", "The event's state_key must be its sender");
  if (parseUserId(pdu.sender)?.server !== origin)
    throw new AmiError("M_FORBIDDEN", `The event's sender ${pdu.sender} is not a user of ${origin}`);
  let id: string;
  try {
    id = eventIdFor(pdu, room.version);
  } catch {
    throw new AmiError("M_BAD_JSON", "The event cannot be hashed");
  }
  if (id !== eventId) throw new AmiError("M_BAD_JSON", `The event's ID is ${id}, not ${eventId}`);
  // A restricted join names one of our users who vouches for it: the event carries our signature too.
  const via = content[VIA_KEY];
  if (membership === "join" && typeof via === "string" && parseUserId(via)?.server === hs.serverName) {
    const theirs = (pdu.signatures ?? {}) as Record<string, Record<string, string>>;
    const ours = signEvent(pdu, hs.serverName, hs.signingKey, room.version).signatures;
    pdu = { ...pdu, signatures: { ...theirs, ...ours } };
  }
  const res = (await hs.federation.onPdus(origin, [pdu]))[eventId];
  if (!res) throw new AmiError("M_BAD_JSON", "The event could not be checked");
  if (res.error) throw new AmiError("M_FORBIDDEN", `The ${membership} event was not accepted: ${res.error}`);
  const [event] = await hs.store.dag.getDagEvents([eventId]);
  if (!event || event.stream === null || event.rejected !== null)
    throw new AmiError("M_FORBIDDEN", `The ${membership} event was not accepted (soft-failed against current state)`);
  // The room's other servers learn of it from us (the origin has it).
  sendPduOut(hs, roomId, pdu, undefined, origin);
  return { room, event, pdu };
}

async function pdus(hs: Homeserver, ids: string[]): Promise<Record<string, unknown>[]> {
  if (ids.length === 0) return [];
  return (await hs.store.dag.getDagEvents(ids)).map((e) => {
    const { unsigned: _u, ...pdu } = e.pdu;
    return pdu;
  });
}

export const membershipRoutes: Route[] = [
  /** PUT /_matrix/federation/v2/send_join/{roomId}/{eventId} — the joining server's signed join. */
  signedRoute({
    method: "PUT",
    paths: ["/_matrix/federation/v2/send_join/{roomId}/{eventId}"],
    async handler(req, origin) {
      const { hs } = req;
      const { event, pdu } = await acceptMembership(req, origin, "join");
      const before = await hs.store.dag.getStateIdsAtEvent(event.eventId, "before");
      if (!before) throw new AmiError("M_NOT_FOUND", "No state is known before the join");
      // omit_members is not honoured (the spec allows it): every member event goes, members_omitted is false.
      const stateIds = [...before.values()].sort();
      const chain = await hs.store.dag.getAuthChain([...stateIds, ...((pdu.auth_events as string[]) ?? [])]);
      const [state, authChain] = await Promise.all([pdus(hs, stateIds), pdus(hs, chain.sort())]);
      return {
        json: {
          origin: hs.serverName,
          state,
          auth_chain: authChain,
          event: pdu,
          members_omitted: false,
        },
      };
    },
  }),
  /** PUT /_matrix/federation/v2/send_leave/{roomId}/{eventId} — the leaving server's signed leave. */
  signedRoute({
    method: "PUT",
    paths: ["/_matrix/federation/v2/send_leave/{roomId}/{eventId}"],
    async handler(req, origin) {
      await acceptMembership(req, origin, "leave");
      return { json: {} };
    },
  }),
  /** PUT /_matrix/federation/v1/send_knock/{roomId}/{eventId} — a knock; answers the room's stripped state. */
  signedRoute({
    method: "PUT",
    paths: ["/_matrix/federation/v1/send_knock/{roomId}/{eventId}"],
    async handler(req, origin) {
      const { hs } = req;
      const { room } = await acceptMembership(req, origin, "knock");
      const types = ["m.room.create", "m.room.name", "m.room.avatar", "m.room.join_rules", "m.room.canonical_alias"];
      const stripped = [];
      for (const t of types) {
        const e = await hs.store.events.getCurrentStateEvent(room.roomId, t, "");
        if (e) stripped.push({ type: t, state_key: "", sender: e.pdu.sender, content: e.pdu.content });
      }
      return { json: { knock_room_state: stripped } };
    },
  }),
];
