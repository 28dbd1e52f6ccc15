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
import { type StateKey, stateKey } from "../events/auth.ts";
import { signEvent } from "../events/event-signing.ts";
import { contentHash, eventIdFor } from "../events/hashing.ts";
import { isValidEventId, isValidRoomId, parseUserId, roomIdOfCreateEvent, serverNameOf } from "../events/ids.ts";
import { isSupportedRoomVersion, roomVersionRules } from "../events/room-versions.ts";
import type { Homeserver } from "../hs.ts";
import type { MatrixRequest, Route } from "../http/types.ts";
import { VIA_KEY } from "../service/restricted-join.ts";
import type { DagEvent, RoomRow } from "../store/types.ts";
import { sendPduOut } from "./edus-out.ts";
import { checkPduSignatures } from "./event-signatures.ts";
import { checkPduFormat } from "./pdu-in.ts";
import { residentRoomFor } from "./room-reads.ts";
import { signedRoute } from "./routes.ts";

/**
 * The room (404 when unknown, or when no user of ours is joined: our state of it is stale) after the ACL check (403
 * for a denied origin): as the templates check it.
 */
const residentRoom = residentRoomFor;

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

/**
 * send_join with `omit_members=true` (spec joins-v2.yaml, a "partial state" join): the state before the join without
 * its m.room.member events, except the joining user's own and, when the room has neither a name nor a canonical
 * alias, those of the heroes a /sync summary would name (up to 5 joined or invited members, oldest membership
 * first; else left ones); and the servers with a member joined before the join.
 */
async function partialJoinState(
  hs: Homeserver,
  roomId: string,
  before: ReadonlyMap<StateKey, string>,
  joiner: string,
): Promise<{ state: string[]; servers: string[] }> {
  const state: string[] = [];
  const members = new Map<string, string>();
  const memberPrefix = stateKey("m.room.member", "");
  for (const [key, id] of before) {
    if (key.startsWith(memberPrefix)) members.set(key.slice(memberPrefix.length), id);
    else state.push(id);
  }
  const own = members.get(joiner);
  if (own) state.push(own);
  const named = before.has(stateKey("m.room.name", "")) || before.has(stateKey("m.room.canonical_alias", ""));
  const memberRows = members.size ? await hs.store.dag.getDagEvents([...members.values()]) : [];
  const membershipOfRow = (e: DagEvent) => String((e.pdu.content as Record<string, unknown> | undefined)?.membership);
  if (!named) {
    const others = memberRows.filter((e) => e.stateKey !== joiner).sort((a, b) => a.depth - b.depth);
    const active = others.filter((e) => ["join", "invite"].includes(membershipOfRow(e)));
    for (const e of (active.length ? active : others).slice(0, 5)) state.push(e.eventId);
  }
  const servers = new Set<string>();
  for (const e of memberRows)
    if (membershipOfRow(e) === "join" && e.stateKey) {
      const server = serverNameOf(e.stateKey);
      if (server) servers.add(server);
    }
  return { state: [...new Set(state)], servers: [...servers].sort() };
}

export const membershipRoutes: Route[] = [
  /** PUT /_matrix/federation/v2/send_join/{roomId}/{eventId} — the joining server's signed join. */
  signedRoute({
    method: "PUT",
    paths: ["/_matrix/federation/v2/send_join/{roomId}/{eventId}"],
    async handler(req, origin) {
      const { hs } = req;
      const omit = req.query.get("omit_members");
      if (omit !== null && omit !== "true" && omit !== "false")
        throw new AmiError("M_INVALID_PARAM", "omit_members must be true or false");
      const { event, pdu } = await acceptMembership(req, origin, "join");
      const before = await hs.store.dag.getStateIdsAtEvent(event.eventId, "before");
      if (!before) throw new AmiError("M_NOT_FOUND", "No state is known before the join");
      const joinAuth = (pdu.auth_events as string[]) ?? [];
      if (omit !== "true") {
        const stateIds = [...before.values()].sort();
        const chain = await hs.store.dag.getAuthChain([...stateIds, ...joinAuth]);
        const [state, authChain] = await Promise.all([pdus(hs, stateIds), pdus(hs, chain.sort())]);
        return { json: { origin: hs.serverName, state, auth_chain: authChain, event: pdu, members_omitted: false } };
      }
      const partial = await partialJoinState(hs, event.roomId, before, pdu.sender as string);
      const stateIds = [...partial.state].sort();
      const inState = new Set(stateIds);
      // The auth chain of the join and of the state sent, less what `state` carries already (the spec allows it).
      const chain = (await hs.store.dag.getAuthChain([...stateIds, ...joinAuth])).filter((id) => !inState.has(id));
      const [state, authChain] = await Promise.all([pdus(hs, stateIds), pdus(hs, chain.sort())]);
      return {
        json: {
          origin: hs.serverName,
          state,
          auth_chain: authChain,
          event: pdu,
          members_omitted: true,
          servers_in_room: partial.servers,
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
        // Full PDUs (spec v1.16, MSC4311: every entry formatted according to the room version; a v12 room ID names
        // no server, the create PDU does).
        if (e) stripped.push(statePdu(e.pdu));
      }
      return { json: { knock_room_state: stripped } };
    },
  }),
];

/** The state an invitee is shown of the room (spec "stripped state"). */
/** A state event for invite_room_state / knock_room_state: the PDU as signed (spec v1.16: formatted per room version). */
function statePdu(pdu: Record<string, unknown>): Record<string, unknown> {
  const { unsigned: _u, ...rest } = pdu;
  return rest;
}

const STRIPPED = ["m.room.create", "m.room.join_rules", "m.room.name", "m.room.avatar", "m.room.canonical_alias"];
const MAX_INVITE_STATE = 50;

/**
 * Room version 12 (spec invites-v2 / knocks, v1.16): the stripped state's `m.room.create` must be the room's own, as a
 * full PDU: its reference hash is the room ID and its content hash holds (what the reference hash covers of the
 * content), so no server can show our user another room's creator, version or type. Null when it is, else why not;
 * always null for older versions (the room ID does not name the create event).
 */
export function strippedCreateProblem(state: unknown[], roomId: string, version: string): string | null {
  if (!roomVersionRules(version)?.roomIdIsCreateHash) return null;
  const creates = state.filter(
    (e): e is Record<string, unknown> =>
      !!e && typeof e === "object" && (e as { type?: unknown }).type === "m.room.create",
  );
  if (creates.length === 0) return "the stripped state has no m.room.create event";
  for (const c of creates) {
    let id: string | null = null;
    try {
      const h = (c.hashes as { sha256?: unknown } | undefined)?.sha256;
      if (c.state_key === "" && typeof h === "string" && h === contentHash(c)) id = eventIdFor(c, version);
    } catch {
      id = null;
    }
    if (id === null || roomIdOfCreateEvent(id) !== roomId)
      return "the stripped state's m.room.create event is not the room's create event";
  }
  return null;
}

/**
 * A local user invites a remote one (rooms.ts, before the invite is persisted): the invitee's server gets it by
 * PUT /v2/invite with the room's stripped state and answers it signed by itself too; that event (the same event
 * ID, the invitee server's signature checked) is what we persist and send on.
 */
export async function inviteRemote(
  hs: Homeserver,
  signed: Record<string, unknown>,
  eventId: string,
  version: string,
): Promise<Record<string, unknown>> {
  const roomId = signed.room_id as string;
  const target = serverNameOf(signed.state_key as string) as string;
  const state = [];
  for (const t of STRIPPED) {
    const e = await hs.store.events.getCurrentStateEvent(roomId, t, "");
    if (e) state.push(statePdu(e.pdu));
  }
  const res = await hs.federation.client.request<{ event?: Record<string, unknown> }>(target, {
    method: "PUT",
    path: `/_matrix/federation/v2/invite/${encodeURIComponent(roomId)}/${encodeURIComponent(eventId)}`,
    body: { room_version: version, event: signed, invite_room_state: state },
  });
  const back = res.event;
  let backId: string | null = null;
  try {
    backId = back ? eventIdFor(back, version) : null;
  } catch {
    backId = null;
  }
  if (!back || backId !== eventId)
    throw new AmiError("AMI_UNAVAILABLE", `${target} answered the invite with another event`, {}, 502);
  const sig = await checkPduSignatures(back, version, hs.federation.keys);
  const theirs = (back.signatures as Record<string, unknown> | undefined)?.[target];
  if (!sig.ok || sig.redacted || !theirs)
    throw new AmiError("AMI_UNAVAILABLE", `${target} answered the invite without its valid signature`, {}, 502);
  const { unsigned: _u, ...pdu } = back;
  return pdu;
}

export const inviteRoutes: Route[] = [
  /**
   * PUT /_matrix/federation/v2/invite/{roomId}/{eventId} — a remote server invites one of our users: the event is
   * checked (an invite of a local user by a user of the origin, its ID, the origin's signature), signed by us and
   * stored as the room's invite, state-only (in no timeline, as Synapse's out-of-band outliers), with the stripped
   * state in unsigned.invite_room_state, so the user sees it in /sync's invite section; the room row is created when the room is new here.
   */
  signedRoute({
    method: "PUT",
    paths: ["/_matrix/federation/v2/invite/{roomId}/{eventId}"],
    async handler(req, origin) {
      const { hs } = req;
      const { roomId, eventId } = req.params;
      if (!isValidRoomId(roomId)) throw new AmiError("M_INVALID_PARAM", "roomId is not a room ID");
      if (!isValidEventId(eventId)) throw new AmiError("M_INVALID_PARAM", "eventId is not an event ID");
      const body = (req.body ?? {}) as Record<string, unknown>;
      const version = typeof body.room_version === "string" ? body.room_version : "";
      if (!isSupportedRoomVersion(version))
        throw new AmiError("M_INCOMPATIBLE_ROOM_VERSION", `Room version ${version} is not supported here`, {
          room_version: version,
        });
      const pdu = body.event as Record<string, unknown> | undefined;
      if (!pdu || typeof pdu !== "object" || Array.isArray(pdu)) throw new AmiError("M_BAD_JSON", "event is required");
      const content = pdu.content as Record<string, unknown> | undefined;
      if (pdu.type !== "m.room.member" || content?.membership !== "invite" || pdu.room_id !== roomId)
        throw new AmiError("M_BAD_JSON", "The event is not an invite into the room of the path");
      if (typeof pdu.sender !== "string" || parseUserId(pdu.sender)?.server !== origin)
        throw new AmiError("M_FORBIDDEN", `The inviter is not a user of ${origin}`);
      const invitee = pdu.state_key;
      if (typeof invitee !== "string" || parseUserId(invitee)?.server !== hs.serverName)
        throw new AmiError("M_FORBIDDEN", "The invitee is not a user of this server");
      if (!(await hs.store.accounts.getUser(invitee))) throw new AmiError("M_NOT_FOUND", `No user ${invitee} here`);
      let id: string;
      try {
        id = checkPduFormat(pdu, version, origin);
      } catch (e) {
        throw new AmiError("M_BAD_JSON", `The invite is malformed: ${e instanceof Error ? e.message : String(e)}`);
      }
      if (id !== eventId) throw new AmiError("M_BAD_JSON", `The event's ID is ${id}, not ${eventId}`);
      const sig = await checkPduSignatures(pdu, version, hs.federation.keys);
      if (!sig.ok || sig.redacted)
        throw new AmiError("M_FORBIDDEN", `The invite's signature is not valid${sig.ok ? "" : `: ${sig.reason}`}`);
      const ours = signEvent(pdu, hs.serverName, hs.signingKey, version).signatures;
      const { unsigned: _u, ...bare } = pdu;
      const signed = {
        ...bare,
        signatures: { ...((pdu.signatures ?? {}) as Record<string, unknown>), ...ours },
      } as Record<string, unknown>;
      const given = Array.isArray(body.invite_room_state) ? body.invite_room_state.slice(0, MAX_INVITE_STATE) : [];
      const badCreate = strippedCreateProblem(given, roomId, version);
      if (badCreate) throw new AmiError("M_INVALID_PARAM", `invite_room_state: ${badCreate}`);
      const room = await hs.store.rooms.getRoom(roomId);
      if (room && room.version !== version)
        throw new AmiError("M_BAD_JSON", `Room ${roomId} has version ${room.version} here, not ${version}`);
      const have = (await hs.store.events.getMembership(roomId, invitee))?.membership;
      if (have === "join") return { json: { event: signed } };
      if (!room)
        await hs.store.rooms.createRoom({
          roomId,
          version,
          creator: pdu.sender,
          createdTs: Date.now(),
          isPublic: false,
        });
      // With a joined member of ours the room's PDUs reach us anyway: the invite comes by /send, checked as any PDU.
      const localMember = room
        ? (await hs.store.events.getMembers(roomId, "join")).some((m) => serverNameOf(m.userId) === hs.serverName)
        : false;
      const [stored] = await hs.store.dag.getDagEvents([eventId]);
      if (!localMember && (!stored || stored.stream === null))
        await hs.rooms.withRemote(roomId, async (_head, persist) => {
          const before = (await hs.store.dag.getForwardExtremities(roomId)).map((e) => e.eventId);
          await persist({
            eventId,
            roomId,
            type: "m.room.member",
            stateKey: invitee,
            sender: pdu.sender as string,
            originServerTs: pdu.origin_server_ts as number,
            depth: pdu.depth as number,
            pdu: { ...signed, unsigned: { invite_room_state: given } },
            // Out of band (no local member): membership and /sync's invite section read it, no timeline does, as
            // Synapse keeps such an invite an outlier. After a join the timeline starts at the join, and the state the
            // join brought (stored after the invite) is the state at its start.
            stateOnly: true,
          });
          // A room known here (we left it): its extremities stay; we have no state for the invite to build on.
          if (before.length > 0) await hs.store.dag.setForwardExtremities(roomId, before);
        });
      return { json: { event: signed } };
    },
  }),
];
