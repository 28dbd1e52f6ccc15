/**
 * What another server may read of a room's DAG (spec server-server events.yaml, backfill.yaml, event_auth.yaml)
 * and the templates it asks for before a join, leave or knock (joins-v1/v2, leaving, knocks: `make_*`). Every
 * route is signed (signedRoute) and checked in this order: the room exists (404 M_NOT_FOUND), its
 * m.room.server_acl admits the origin (403 M_FORBIDDEN), the origin has a joined member in the room's current
 * state (403 M_FORBIDDEN; make_* ask instead that the user belongs to the origin). Events the origin's users could
 * not see (history visibility, "Server behaviour": an event is visible to a server if any of its users could see
 * it, judged by service/visibility.ts' one algorithm) are sent redacted. Every list is capped.
 */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { type AuthEvent, authTypesFor, type StateKey, stateKey } from "../events/auth.ts";
import { createEventIdOfRoom, isValidEventId, isValidRoomId, isValidUserId, serverNameOf } from "../events/ids.ts";
import { redactEvent } from "../events/redaction.ts";
import { isSupportedRoomVersion, roomVersionRules } from "../events/room-versions.ts";
import type { Homeserver } from "../hs.ts";
import type { MatrixRequest, Route } from "../http/types.ts";
import { localMemberContent } from "../service/restricted-join.ts";
import { AUTH_TYPES, authEventOf } from "../service/room-head.ts";
import { isVisible, type StreamRange, visibleRanges } from "../service/visibility.ts";
import type { OwedPdu } from "../store/destinations-types.ts";
import type { DagEvent, RoomRow, StoredEvent } from "../store/types.ts";
import { parseBody, queryInt } from "../validate.ts";
import { roomAdmits } from "./access.ts";
import { signedRoute } from "./routes.ts";

/** Most events one backfill answers (Synapse caps at 100 too). */
export const MAX_BACKFILL = 100;
/** get_missing_events: default and greatest `limit`. */
export const DEFAULT_MISSING = 10;
export const MAX_MISSING = 20;
/** Most `v` (backfill) / earliest / latest event IDs one request may name. */
export const MAX_REQUEST_IDS = 100;
/** Most prev_events in a make_* template (as a local send). */
const MAX_PREV = 20;

function eventIdParam(v: string | null | undefined, name: string): string {
  if (!v) throw new AmiError("M_MISSING_PARAM", `${name} is required`);
  if (!isValidEventId(v)) throw new AmiError("M_INVALID_PARAM", `${name} is not an event ID`);
  return v;
}

/** The room (404 when unknown) after the ACL check (403 for a denied origin). */
export async function roomFor(hs: Homeserver, roomId: string, origin: string): Promise<RoomRow> {
  if (!isValidRoomId(roomId)) throw new AmiError("M_INVALID_PARAM", "roomId is not a room ID");
  const room = await hs.store.rooms.getRoom(roomId);
  if (!room) throw new AmiError("M_NOT_FOUND", `Room ${roomId} is not known to this server`);
  if (!(await roomAdmits(hs, roomId, origin)))
    throw new AmiError("M_FORBIDDEN", `Server ${origin} is denied by the room's server ACL`);
  return room;
}

/**
 * roomFor, for the templates and send_* of joins, leaves and knocks: we must be in the room (one of our users
 * joined), else our state of it is stale — we no longer receive its events — and another server must be asked
 * (404 M_NOT_FOUND, as Synapse's "Not an active room on this server", so the asking server tries the next one).
 */
export async function residentRoomFor(hs: Homeserver, roomId: string, origin: string): Promise<RoomRow> {
  const room = await roomFor(hs, roomId, origin);
  const joined = await hs.store.events.getMembers(roomId, "join");
  if (!joined.some((m) => serverNameOf(m.userId) === hs.serverName))
    throw new AmiError("M_NOT_FOUND", `${roomId} is not an active room on this server (no member of ours is joined)`);
  return room;
}

/** A partial-state room (joined here with members omitted, until its resync) has no whole state to give out. */
function notPartial(hs: Homeserver, roomId: string): void {
  if (hs.partialState?.isPartial(roomId))
    throw new AmiError(
      "M_NOT_FOUND",
      `This server's state of ${roomId} is partial (a join with members omitted is resyncing); ask another server`,
    );
}

/** What the origin's users may see of a room: one visible-range list per user with any membership. */
interface ServerView {
  ranges: StreamRange[][];
}

/** roomFor, then the origin must have a joined member now; returns the origin's view of the room's history. */
async function serverInRoom(
  hs: Homeserver,
  roomId: string,
  origin: string,
): Promise<{ room: RoomRow; view: ServerView }> {
  const room = await roomFor(hs, roomId, origin);
  const members = (await hs.store.events.getMembers(roomId)).filter((m) => serverNameOf(m.userId) === origin);
  if (!members.some((m) => m.membership === "join"))
    throw new AmiError("M_FORBIDDEN", `Server ${origin} is not in room ${roomId}`);
  const histories = await hs.store.events.getStateHistories([
    { roomId, type: "m.room.history_visibility", stateKey: "" },
    ...members.map((m) => ({ roomId, type: "m.room.member", stateKey: m.userId })),
  ]);
  const settings = histories[0];
  return { room, view: { ranges: histories.slice(1).map((h) => visibleRanges(settings, h)) } };
}

/**
 * The sender's catch-up (federation/sender.ts) resends owed local events read back from the timeline, which may
 * include events sent while `destination` had no member in the room (it left and came back, or was only invited):
 * each goes as backfill would send it, redacted when none of the destination's users could see it (or redacted here).
 */
export async function owedPdusFor(hs: Homeserver, destination: string, owed: OwedPdu[]): Promise<OwedPdu[]> {
  const byRoom = new Map<string, { room: RoomRow | null; view: ServerView }>();
  const stored = new Map((await hs.store.events.getEvents(owed.map((o) => o.eventId))).map((e) => [e.eventId, e]));
  const out: OwedPdu[] = [];
  for (const o of owed) {
    let v = byRoom.get(o.roomId);
    if (!v) {
      const room = await hs.store.rooms.getRoom(o.roomId);
      const members = (await hs.store.events.getMembers(o.roomId)).filter(
        (m) => serverNameOf(m.userId) === destination,
      );
      const histories = await hs.store.events.getStateHistories([
        { roomId: o.roomId, type: "m.room.history_visibility", stateKey: "" },
        ...members.map((m) => ({ roomId: o.roomId, type: "m.room.member", stateKey: m.userId })),
      ]);
      v = { room, view: { ranges: histories.slice(1).map((h) => visibleRanges(histories[0], h)) } };
      byRoom.set(o.roomId, v);
    }
    const e = stored.get(o.eventId);
    if (!v.room || !e) continue;
    out.push({ ...o, pdu: pduFor(e, v.room, v.view) });
  }
  return out;
}

/** The PDU as sent to the origin: redacted when redacted here, or when none of its users could see it. */
function pduFor(e: DagEvent | StoredEvent, room: RoomRow, view: ServerView | null): Record<string, unknown> {
  const redacted = "redactedBy" in e && e.redactedBy !== null;
  const hidden = view !== null && e.stream !== null && !view.ranges.some((r) => isVisible(r, e.stream as number));
  const { unsigned: _u, ...pdu } = e.pdu;
  return redacted || hidden ? redactEvent(pdu, room.version) : pdu;
}

/** The stored event (timeline or outlier) in this room; 404 otherwise. */
async function eventIn(hs: Homeserver, roomId: string, eventId: string): Promise<DagEvent> {
  const [e] = await hs.store.dag.getDagEvents([eventId]);
  if (!e || e.roomId !== roomId) throw new AmiError("M_NOT_FOUND", `Event ${eventId} is not known in ${roomId}`);
  return e;
}

async function pdusOf(hs: Homeserver, ids: string[]): Promise<DagEvent[]> {
  if (ids.length === 0) return [];
  const byId = new Map((await hs.store.dag.getDagEvents(ids)).map((e) => [e.eventId, e]));
  return ids.map((id) => byId.get(id)).filter((e): e is DagEvent => !!e);
}

/** The state before a timeline event (spec: prior to its own change) and the auth chain of that state. */
async function stateAt(hs: Homeserver, roomId: string, eventId: string): Promise<{ state: string[]; chain: string[] }> {
  await eventIn(hs, roomId, eventId);
  const ids = await hs.store.dag.getStateIdsAtEvent(eventId, "before");
  if (!ids) throw new AmiError("M_NOT_FOUND", `No state is known at ${eventId} (an outlier)`);
  const state = [...ids.values()].sort();
  return { state, chain: await hs.store.dag.getAuthChain(state) };
}

function txn(hs: Homeserver, pdus: unknown[]) {
  return { origin: hs.serverName, origin_server_ts: Date.now(), pdus };
}

const missingBody = z.object({
  earliest_events: z.array(z.string().max(255)).max(MAX_REQUEST_IDS),
  latest_events: z.array(z.string().max(255)).min(1).max(MAX_REQUEST_IDS),
  limit: z.number().int().min(0).optional(),
  min_depth: z.number().int().optional(),
});

/**
 * Walk prev edges breadth-first from `start` (included when `includeStart`), never past `stop`, at most `limit`
 * events in this room; newest (greatest depth) first.
 */
async function walkBack(
  hs: Homeserver,
  roomId: string,
  start: string[],
  opts: { limit: number; stop?: Set<string>; includeStart: boolean; minDepth?: number },
): Promise<DagEvent[]> {
  const seen = new Set<string>(opts.stop ?? []);
  const found: DagEvent[] = [];
  let frontier: string[] = [];
  if (opts.includeStart) frontier = start.filter((id) => !seen.has(id));
  else {
    for (const id of start) seen.add(id);
    frontier = [...new Set([...(await hs.store.dag.getPrevEvents(start)).values()].flat())];
  }
  while (frontier.length > 0 && found.length < opts.limit) {
    const next = frontier.filter((id) => !seen.has(id));
    for (const id of next) seen.add(id);
    const events = (await pdusOf(hs, next)).filter(
      (e) => e.roomId === roomId && e.stream !== null && (opts.minDepth === undefined || e.depth >= opts.minDepth),
    );
    events.sort((a, b) => b.depth - a.depth || (b.stream ?? 0) - (a.stream ?? 0));
    const taken = events.slice(0, opts.limit - found.length);
    found.push(...taken);
    if (taken.length === 0) break;
    const prevs = await hs.store.dag.getPrevEvents(taken.map((e) => e.eventId));
    frontier = [...new Set([...prevs.values()].flat())];
  }
  return found;
}

/** The user of a make_* path: a user ID of the requesting server. */
function remoteUser(req: MatrixRequest, origin: string): string {
  const userId = req.params.userId;
  if (!isValidUserId(userId)) throw new AmiError("M_INVALID_PARAM", "userId is not a user ID");
  if (serverNameOf(userId) !== origin)
    throw new AmiError("M_FORBIDDEN", `User ${userId} does not belong to the requesting server ${origin}`);
  return userId;
}

/** The auth-relevant part of the room's current state, as the room head holds it (room-head.ts). */
async function authStateOf(hs: Homeserver, roomId: string): Promise<Map<StateKey, AuthEvent>> {
  const auth = new Map<StateKey, AuthEvent>();
  for (const e of await hs.store.events.getCurrentState(roomId))
    if (e.stateKey !== null && AUTH_TYPES.has(e.type)) auth.set(stateKey(e.type, e.stateKey), authEventOf(e));
  return auth;
}

/**
 * An unsigned m.room.member template for `userId` on top of the room's forward extremities, its auth events picked
 * from the room's current auth state (as a local send picks them from the head).
 */
async function memberTemplate(hs: Homeserver, room: RoomRow, userId: string, content: Record<string, unknown>) {
  const extremities = (await hs.store.dag.getForwardExtremities(room.roomId)).slice(0, MAX_PREV);
  if (extremities.length === 0) throw new AmiError("M_NOT_FOUND", `Room ${room.roomId} has no events`);
  const auth = await authStateOf(hs, room.roomId);
  const event = {
    type: "m.room.member",
    room_id: room.roomId,
    sender: userId,
    state_key: userId,
    origin: hs.serverName,
    origin_server_ts: Date.now(),
    content,
    depth: Math.max(...extremities.map((x) => x.depth)) + 1,
    prev_events: extremities.map((x) => x.eventId),
    auth_events: [] as string[],
  };
  for (const [type, key] of authTypesFor(event, room.version)) {
    const e = auth.get(stateKey(type, key));
    if (e) event.auth_events.push(e.event_id);
  }
  return event;
}

async function membershipOf(hs: Homeserver, roomId: string, userId: string): Promise<string | null> {
  return (await hs.store.events.getMembership(roomId, userId))?.membership ?? null;
}

async function joinRule(hs: Homeserver, roomId: string): Promise<string> {
  const e = await hs.store.events.getCurrentStateEvent(roomId, "m.room.join_rules", "");
  const r = e?.pdu.content?.join_rule;
  return typeof r === "string" ? r : "invite";
}

/** `ver` query values: the room versions the asking server supports (absent: only "1", as the spec says). */
function checkVersion(req: MatrixRequest, room: RoomRow): void {
  const vers = req.query.getAll("ver");
  if (!(vers.length ? vers : ["1"]).includes(room.version))
    throw new AmiError(
      "M_INCOMPATIBLE_ROOM_VERSION",
      `Room ${room.roomId} has version ${room.version}, not among the versions the server supports`,
      { room_version: room.version },
    );
  if (!isSupportedRoomVersion(room.version))
    throw new AmiError("M_UNSUPPORTED_ROOM_VERSION", `Room version ${room.version} is not supported here`);
}

export const roomReadRoutes: Route[] = [
  /** GET /_matrix/federation/v1/event/{eventId} — one event, as a transaction with one PDU. */
  signedRoute({
    method: "GET",
    paths: ["/_matrix/federation/v1/event/{eventId}"],
    async handler(req, origin) {
      const eventId = eventIdParam(req.params.eventId, "eventId");
      const [e] = await req.hs.store.dag.getDagEvents([eventId]);
      if (!e) throw new AmiError("M_NOT_FOUND", `Event ${eventId} is not known here`);
      const { room, view } = await serverInRoom(req.hs, e.roomId, origin);
      return { json: txn(req.hs, [pduFor(e, room, view)]) };
    },
  }),
  /** GET /_matrix/federation/v1/state/{roomId}?event_id= — the state before an event and its auth chain. */
  signedRoute({
    method: "GET",
    paths: ["/_matrix/federation/v1/state/{roomId}"],
    async handler(req, origin) {
      const eventId = eventIdParam(req.query.get("event_id"), "event_id");
      const { room } = await serverInRoom(req.hs, req.params.roomId, origin);
      notPartial(req.hs, room.roomId);
      const { state, chain } = await stateAt(req.hs, room.roomId, eventId);
      const [pdus, auth] = await Promise.all([pdusOf(req.hs, state), pdusOf(req.hs, chain)]);
      return {
        json: {
          pdus: pdus.map((e) => pduFor(e, room, null)),
          auth_chain: auth.map((e) => pduFor(e, room, null)),
        },
      };
    },
  }),
  /** GET /_matrix/federation/v1/state_ids/{roomId}?event_id= — the same as IDs. */
  signedRoute({
    method: "GET",
    paths: ["/_matrix/federation/v1/state_ids/{roomId}"],
    async handler(req, origin) {
      const eventId = eventIdParam(req.query.get("event_id"), "event_id");
      const { room } = await serverInRoom(req.hs, req.params.roomId, origin);
      notPartial(req.hs, room.roomId);
      const { state, chain } = await stateAt(req.hs, room.roomId, eventId);
      return { json: { pdu_ids: state, auth_chain_ids: chain } };
    },
  }),
  /** GET /_matrix/federation/v1/event_auth/{roomId}/{eventId} — the event's full auth chain. */
  signedRoute({
    method: "GET",
    paths: ["/_matrix/federation/v1/event_auth/{roomId}/{eventId}"],
    async handler(req, origin) {
      const eventId = eventIdParam(req.params.eventId, "eventId");
      const { room } = await serverInRoom(req.hs, req.params.roomId, origin);
      await eventIn(req.hs, room.roomId, eventId);
      const authOf = (await req.hs.store.dag.getAuthEvents([eventId])).get(eventId) ?? [];
      const chain = await req.hs.store.dag.getAuthChain(authOf);
      // v12: the create event is not cited (the room ID names it) but is still what the chain is authorised by
      // (Synapse counts it among every event's auth events): it is part of the answer.
      const create = roomVersionRules(room.version)?.roomIdIsCreateHash ? createEventIdOfRoom(room.roomId) : undefined;
      if (create && create !== eventId) chain.push(create);
      const events = await pdusOf(req.hs, [...new Set([...authOf, ...chain])].sort());
      return { json: { auth_chain: events.map((e) => pduFor(e, room, null)) } };
    },
  }),
  /** GET /_matrix/federation/v1/backfill/{roomId}?v=&limit= — the given events and their ancestors, newest first. */
  signedRoute({
    method: "GET",
    paths: ["/_matrix/federation/v1/backfill/{roomId}"],
    async handler(req, origin) {
      const v = req.query.getAll("v");
      if (v.length === 0) throw new AmiError("M_MISSING_PARAM", "v is required");
      if (v.length > MAX_REQUEST_IDS) throw new AmiError("M_INVALID_PARAM", `at most ${MAX_REQUEST_IDS} v`);
      for (const id of v) eventIdParam(id, "v");
      if (!req.query.has("limit")) throw new AmiError("M_MISSING_PARAM", "limit is required");
      const limit = Math.min(queryInt(req.query, "limit", MAX_BACKFILL, 0), MAX_BACKFILL);
      const { room, view } = await serverInRoom(req.hs, req.params.roomId, origin);
      const events = await walkBack(req.hs, room.roomId, v, { limit, includeStart: true });
      return {
        json: txn(
          req.hs,
          events.map((e) => pduFor(e, room, view)),
        ),
      };
    },
  }),
  /** POST /_matrix/federation/v1/get_missing_events/{roomId} — prevs of latest_events back to earliest_events. */
  signedRoute({
    method: "POST",
    paths: ["/_matrix/federation/v1/get_missing_events/{roomId}"],
    async handler(req, origin) {
      const b = parseBody(missingBody, req.body);
      for (const id of [...b.earliest_events, ...b.latest_events]) eventIdParam(id, "event ID");
      const limit = Math.min(b.limit ?? DEFAULT_MISSING, MAX_MISSING);
      const { room, view } = await serverInRoom(req.hs, req.params.roomId, origin);
      const events = await walkBack(req.hs, room.roomId, b.latest_events, {
        limit,
        includeStart: false,
        stop: new Set(b.earliest_events),
        minDepth: b.min_depth,
      });
      // Oldest first, so the asking server can apply them in order.
      events.sort((a, c) => a.depth - c.depth || (a.stream ?? 0) - (c.stream ?? 0));
      return { json: { events: events.map((e) => pduFor(e, room, view)) } };
    },
  }),
  /** GET /_matrix/federation/v1/make_join/{roomId}/{userId}?ver= — a join template (public rooms, or invited). */
  signedRoute({
    method: "GET",
    paths: ["/_matrix/federation/v1/make_join/{roomId}/{userId}"],
    async handler(req, origin) {
      const userId = remoteUser(req, origin);
      const room = await residentRoomFor(req.hs, req.params.roomId, origin);
      notPartial(req.hs, room.roomId);
      checkVersion(req, room);
      const [rule, membership] = await Promise.all([
        joinRule(req.hs, room.roomId),
        membershipOf(req.hs, room.roomId, userId),
      ]);
      if (membership === "ban") throw new AmiError("M_FORBIDDEN", `${userId} is banned from ${room.roomId}`);
      let content: Record<string, unknown> = { membership: "join" };
      if (rule === "restricted" || rule === "knock_restricted") {
        // A member of an allowed room (as far as this server knows) joins vouched for by one of our users who
        // may invite (join_authorised_via_users_server, restricted-join.ts); M_FORBIDDEN otherwise.
        content = await localMemberContent(req.hs, await authStateOf(req.hs, room.roomId), userId, userId, content);
      } else if (rule !== "public" && membership !== "invite" && membership !== "join")
        throw new AmiError("M_FORBIDDEN", `The join rule of ${room.roomId} is '${rule}' and ${userId} is not invited`);
      return { json: { room_version: room.version, event: await memberTemplate(req.hs, room, userId, content) } };
    },
  }),
  /** GET /_matrix/federation/v1/make_leave/{roomId}/{userId} — a leave template for a member or invitee. */
  signedRoute({
    method: "GET",
    paths: ["/_matrix/federation/v1/make_leave/{roomId}/{userId}"],
    async handler(req, origin) {
      const userId = remoteUser(req, origin);
      const room = await residentRoomFor(req.hs, req.params.roomId, origin);
      const membership = await membershipOf(req.hs, room.roomId, userId);
      if (membership !== "join" && membership !== "invite" && membership !== "knock")
        throw new AmiError("M_FORBIDDEN", `${userId} has nothing to leave in ${room.roomId}`);
      return {
        json: {
          room_version: room.version,
          event: await memberTemplate(req.hs, room, userId, { membership: "leave" }),
        },
      };
    },
  }),
  /** GET /_matrix/federation/v1/make_knock/{roomId}/{userId}?ver= — a knock template (knock rooms only). */
  signedRoute({
    method: "GET",
    paths: ["/_matrix/federation/v1/make_knock/{roomId}/{userId}"],
    async handler(req, origin) {
      const userId = remoteUser(req, origin);
      const room = await residentRoomFor(req.hs, req.params.roomId, origin);
      notPartial(req.hs, room.roomId);
      checkVersion(req, room);
      const [rule, membership] = await Promise.all([
        joinRule(req.hs, room.roomId),
        membershipOf(req.hs, room.roomId, userId),
      ]);
      if (rule !== "knock" && rule !== "knock_restricted")
        throw new AmiError("M_FORBIDDEN", `Room ${room.roomId} does not allow knocking (join rule '${rule}')`);
      if (membership === "ban" || membership === "join" || membership === "invite")
        throw new AmiError("M_FORBIDDEN", `${userId} cannot knock on ${room.roomId} (membership ${membership})`);
      return {
        json: {
          room_version: room.version,
          event: await memberTemplate(req.hs, room, userId, { membership: "knock" }),
        },
      };
    },
  }),
];
