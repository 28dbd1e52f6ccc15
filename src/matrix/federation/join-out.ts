/**
 * The joining side of a join over federation (spec server-server "Joining Rooms"): a local user joins a room this
 * server is not in. make_join is asked of each candidate server in turn (the next one on failure); the template is
 * filled (our origin, now) and signed, its event ID the reference hash, and sent back by send_join (v2). The answer
 * is checked before anything is stored: every state and auth-chain event of the room with a valid ID, its
 * servers' signatures, and the auth rules against its own auth events (failing ones are dropped); the create event
 * of the template's room version; the join itself authorised by the returned state.
 *
 * Then it is persisted under the room's lock: the room row (its version), the auth chain as outliers, the state
 * events as state-only events (NewEvent.stateOnly: oldest first in one commit, with stream positions so
 * current_state, memberships and state_history come out as for any event and the room head can be loaded, but in
 * no timeline), then the join, which becomes the room's single forward extremity; the current state is set to
 * exactly the returned state plus the join. The joining user's /sync shows the room with that state in its `state`
 * block and a timeline starting at the join; the resident server sends later events to us because we now have a
 * joined member.
 */
import { AmiError } from "../../core/errors.ts";
import { type AuthEvent, authStateTypesFor, checkAuth, type StateKey, stateKey } from "../events/auth.ts";
import { signEvent } from "../events/event-signing.ts";
import { eventIdFor } from "../events/hashing.ts";
import { createEventIdOfRoom, roomIdOfCreateEvent } from "../events/ids.ts";
import { isSupportedRoomVersion, roomVersionRules, SUPPORTED_ROOM_VERSIONS } from "../events/room-versions.ts";
import type { Homeserver } from "../hs.ts";
import { invalidateRoomHosts } from "./edus-out.ts";
import { checkPduSignatures } from "./event-signatures.ts";
import { outlierOf, stateResEventOf } from "./pdu-in.ts";

type Pdu = Record<string, any>;

/** Most state + auth chain events one send_join answer may carry. */
export const MAX_JOIN_EVENTS = 50_000;

function authOf(id: string, p: Pdu): AuthEvent {
  return {
    event_id: id,
    type: p.type,
    state_key: p.state_key,
    sender: p.sender,
    content: p.content ?? {},
    // A v12 create event has none: the one it names.
    room_id: p.room_id ?? (p.type === "m.room.create" ? roomIdOfCreateEvent(id) : p.room_id),
  };
}

/**
 * Store an out-of-band membership of our user (our knock, the leave that rejects an invite or withdraws a knock) in
 * a room we have no state for, under the room's lock and unless already stored; a known room's forward extremities
 * are kept (there is no state to build on). `stateOnly`: in no timeline (a knock, as a received invite).
 */
export async function persistOutOfBand(
  hs: Homeserver,
  roomId: string,
  id: string,
  pdu: Pdu,
  stateOnly: boolean,
): Promise<void> {
  await hs.rooms.withRemote(roomId, async (_head, persist) => {
    const before = (await hs.store.dag.getForwardExtremities(roomId)).map((x) => x.eventId);
    const [have] = await hs.store.dag.getDagEvents([id]);
    if (!have || have.stream === null)
      await persist({
        eventId: id,
        roomId,
        type: "m.room.member",
        stateKey: pdu.state_key as string,
        sender: pdu.sender as string,
        originServerTs: pdu.origin_server_ts as number,
        depth: pdu.depth as number,
        pdu,
        stateOnly,
      });
    if (before.length > 0) await hs.store.dag.setForwardExtremities(roomId, before);
  });
}

/**
 * Try `fn` with each server in turn; the first answer wins. A server that refused (403) says more than one that is
 * not in the room (404): its answer is the client's; otherwise the last error, as a 502 unless it has a status.
 */
export async function throughServers<T>(
  hs: Homeserver,
  what: string,
  roomId: string,
  servers: string[],
  fn: (server: string) => Promise<T>,
): Promise<T> {
  let last: unknown = null;
  let forbidden: AmiError | null = null;
  for (const server of servers) {
    try {
      return await fn(server);
    } catch (err) {
      last = err;
      if (!forbidden && err instanceof AmiError && err.code === "M_FORBIDDEN") forbidden = err;
      hs.log.info(`federation: ${what} failed`, { server, roomId, err: String(err).slice(0, 200) });
    }
  }
  if (forbidden) throw forbidden;
  if (last instanceof AmiError && last.code === "M_NOT_FOUND") throw last;
  throw new AmiError(
    "M_UNKNOWN",
    `No server could take the ${what} for ${roomId} (tried ${servers.join(", ") || "none"})${last ? `: ${String(last)}` : ""}`,
    {},
    last instanceof AmiError ? last.status : 502,
  );
}

/** make_join / make_knock of one server: its template, checked to be `membership` of `userId` in `roomId`. */
export async function makeTemplate(
  hs: Homeserver,
  server: string,
  membership: "join" | "knock",
  roomId: string,
  userId: string,
): Promise<{ version: string; event: Pdu }> {
  const ver = SUPPORTED_ROOM_VERSIONS.map((v) => `ver=${encodeURIComponent(v)}`).join("&");
  const res = await hs.federation.client.request<{ room_version?: string; event?: Pdu }>(server, {
    method: "GET",
    path: `/_matrix/federation/v1/make_${membership}/${encodeURIComponent(roomId)}/${encodeURIComponent(userId)}?${ver}`,
  });
  const version = res.room_version ?? "1";
  const e = res.event;
  if (!isSupportedRoomVersion(version)) throw new AmiError("M_UNSUPPORTED_ROOM_VERSION", `room version ${version}`);
  if (
    !e ||
    typeof e !== "object" ||
    e.type !== "m.room.member" ||
    e.room_id !== roomId ||
    e.sender !== userId ||
    e.state_key !== userId ||
    e.content?.membership !== membership
  )
    throw new AmiError(
      "M_BAD_JSON",
      `${server} answered make_${membership} with a template that is not our ${membership}`,
    );
  return { version, event: e };
}

/** Ask make_join of each server in turn; the first template with the server that gave it. */
function makeJoin(
  hs: Homeserver,
  roomId: string,
  userId: string,
  servers: string[],
): Promise<{ server: string; version: string; event: Pdu }> {
  return throughServers(hs, "join", roomId, servers, async (server) => ({
    server,
    ...(await makeTemplate(hs, server, "join", roomId, userId)),
  }));
}

export async function joinRemote(hs: Homeserver, roomId: string, userId: string, servers: string[]): Promise<string> {
  const candidates = [...new Set(servers)].filter((s) => s && s !== hs.serverName);
  if (candidates.length === 0)
    throw new AmiError("M_NOT_FOUND", `Room ${roomId} is not known here and no server to join it through was given`);
  const { server, version, event: template } = await makeJoin(hs, roomId, userId, candidates);
  hs.pduIn.beginJoin(roomId, version);
  let stored = false;
  try {
    const joinId = await sendJoin(hs, roomId, userId, server, version, template, candidates);
    stored = true;
    return joinId;
  } finally {
    await hs.pduIn.endJoin(roomId, stored);
  }
}

/** send_join of our signed `template`, the answer checked and stored (see the file's comment). */
async function sendJoin(
  hs: Homeserver,
  roomId: string,
  userId: string,
  server: string,
  version: string,
  template: Pdu,
  candidates: string[],
): Promise<string> {
  const { signatures: _s, hashes: _h, event_id: _e, unsigned: _u, ...rest } = template;
  // The joiner's profile goes in the join, as a local join's does (rooms.ts setMembership).
  const user = await hs.store.accounts.getUser(userId);
  const content = { ...rest.content };
  if (user?.displayname) content.displayname = user.displayname;
  if (user?.avatarUrl) content.avatar_url = user.avatarUrl;
  const draft: Pdu = { ...rest, content, origin: hs.serverName, origin_server_ts: Date.now() };
  const signed = signEvent(draft, hs.serverName, hs.signingKey, version);
  const joinId = eventIdFor(signed, version);
  const omit = hs.config.federation.partialStateJoins;
  const res = await hs.federation.client.request<{
    state?: unknown;
    auth_chain?: unknown;
    event?: Pdu;
    members_omitted?: unknown;
    servers_in_room?: unknown;
  }>(server, {
    method: "PUT",
    path: `/_matrix/federation/v2/send_join/${encodeURIComponent(roomId)}/${encodeURIComponent(joinId)}${omit ? "?omit_members=true" : ""}`,
    body: signed,
  });
  await hs.federation.hooks.sendJoinAnswered?.(roomId);
  // A partial state would be taken for the room's whole state unless we asked for it (and then resync it).
  if (res.members_omitted === true && !omit)
    throw new AmiError(
      "M_UNKNOWN",
      `${server} answered send_join with members omitted, which we did not ask for`,
      {},
      502,
    );
  const partial = res.members_omitted === true;
  // Whom the resync asks: the servers the resident names (it first), then those we were given.
  const resyncServers = [
    ...new Set([
      server,
      ...(Array.isArray(res.servers_in_room) ? res.servers_in_room : []).filter(
        (x): x is string => typeof x === "string" && x.length > 0 && x.length <= 255 && x !== hs.serverName,
      ),
      ...candidates,
    ]),
  ].slice(0, 100);
  // A restricted join comes back signed by the resident too; it must still be our event.
  let join: Pdu = signed;
  if (res.event && typeof res.event === "object") {
    try {
      if (eventIdFor(res.event, version) === joinId) join = res.event;
    } catch {
      // Not hashable: ours is used.
    }
  }
  const list = (v: unknown) =>
    (Array.isArray(v) ? v : []).filter((p): p is Pdu => !!p && typeof p === "object" && !Array.isArray(p));
  const stateIn = list(res.state);
  const chainIn = list(res.auth_chain);
  if (stateIn.length + chainIn.length > MAX_JOIN_EVENTS)
    throw new AmiError("M_TOO_LARGE", `${server}'s send_join answer has over ${MAX_JOIN_EVENTS} events`, {}, 502);

  const { events, ok, stateIds } = await verifyRoomEvents(hs, roomId, version, stateIn, chainIn);
  const impliedCreate = roomVersionRules(version)?.roomIdIsCreateHash ? createEventIdOfRoom(roomId) : undefined;
  const state = new Map<StateKey, string>();
  for (const id of stateIds) {
    if (!ok.has(id)) continue;
    const p = events.get(id) as Pdu;
    state.set(stateKey(p.type, p.state_key), id);
  }
  const createId = state.get(stateKey("m.room.create", ""));
  if (!createId || (impliedCreate !== undefined && createId !== impliedCreate))
    throw new AmiError("M_UNKNOWN", `${server} sent no valid create event for ${roomId}`, {}, 502);
  const create = events.get(createId) as Pdu;
  if ((create.content?.room_version ?? "1") !== version)
    throw new AmiError("M_UNKNOWN", `${server}'s create event is not of room version ${version}`, {}, 502);
  // The join, by the state it was sent at.
  const authState = new Map<StateKey, AuthEvent>();
  for (const [t, k] of authStateTypesFor(join as { type: string; sender: string; state_key?: string; content: any })) {
    const id = state.get(stateKey(t, k));
    if (id) authState.set(stateKey(t, k), authOf(id, events.get(id) as Pdu));
  }
  const whyNot = checkAuth(stateResEventOf({ eventId: joinId, pdu: join, rejected: null }), authState, version);
  if (whyNot) throw new AmiError("M_FORBIDDEN", `The join is not allowed by the room's state: ${whyNot}`);

  const { store } = hs;
  if (!(await store.rooms.getRoom(roomId)))
    await store.rooms.createRoom({
      roomId,
      version,
      creator: create.sender,
      createdTs: Number(create.origin_server_ts) || Date.now(),
      isPublic: false,
    });
  await hs.rooms.withRemote(roomId, async (_head, persist) => {
    // Marked first: a crash before the state is all in leaves a room the start-up resync completes (or drops).
    if (partial) await store.rooms.setPartialState(roomId, { joinEventId: joinId, servers: resyncServers });
    const stateSet = new Set(state.values());
    const have = new Map((await store.dag.getDagEvents([...ok, joinId])).map((e) => [e.eventId, e]));
    const outliers = [...ok]
      .filter((id) => !stateSet.has(id) && !have.has(id))
      .map((id) => outlierOf(id, events.get(id) as Pdu, null));
    if (outliers.length) await store.dag.persistOutliers(outliers);
    const toWrite = [...stateSet]
      .filter((id) => (have.get(id)?.stream ?? null) === null)
      .map((id) => [id, events.get(id) as Pdu] as const)
      .sort((a, b) => Number(a[1].depth) - Number(b[1].depth));
    const write = (id: string, p: Pdu, stateOnly: boolean) =>
      persist({
        eventId: id,
        roomId,
        type: p.type,
        stateKey: typeof p.state_key === "string" ? p.state_key : null,
        sender: p.sender,
        originServerTs: p.origin_server_ts,
        depth: p.depth,
        pdu: p,
        stateOnly,
      });
    // Queued together, so the stream writer commits them as one batch (oldest first).
    await Promise.all(toWrite.map(([id, p]) => write(id, p, true)));
    if ((have.get(joinId)?.stream ?? null) === null) await write(joinId, join, false);
    await store.dag.setForwardExtremities(roomId, [joinId]);
    await store.dag.setCurrentState(roomId, new Map([...state, [stateKey("m.room.member", userId), joinId]]));
    invalidateRoomHosts(hs, roomId);
  });
  await hs.rooms.reloadHead(roomId);
  hs.log.info("federation: joined a remote room", { roomId, via: server, events: events.size, partial });
  if (partial) hs.partialState.start(roomId, resyncServers);
  return joinId;
}

/**
 * The checks of a batch of a room's events from another server (a send_join answer, a resync's /state): each
 * event's ID (the reference hash), its room, its servers' signatures (content hash mismatch: the redacted copy),
 * then the auth rules against its own auth events, oldest first (failing ones, or with failed or unknown auth,
 * dropped). `trusted`: events of the room stored here already (not rejected) that auth events may name.
 * `stateIds`: the IDs of the state events among `stateIn`.
 */
export async function verifyRoomEvents(
  hs: Homeserver,
  roomId: string,
  version: string,
  stateIn: Pdu[],
  chainIn: Pdu[],
  trusted: ReadonlyMap<string, Pdu> = new Map(),
): Promise<{ events: Map<string, Pdu>; ok: Set<string>; stateIds: Set<string> }> {
  // Every event: its ID, the room, the signatures of its servers (content hash mismatch: the redacted copy).
  const events = new Map<string, Pdu>();
  const stateIds = new Set<string>();
  const impliedCreate = roomVersionRules(version)?.roomIdIsCreateHash ? createEventIdOfRoom(roomId) : undefined;
  for (const [i, p] of [...stateIn, ...chainIn].entries()) {
    // v12: the create event has no room_id; it belongs here when its ID is the one the room ID names.
    const v12Create = impliedCreate !== undefined && p.type === "m.room.create" && p.room_id === undefined;
    if (p.room_id !== roomId && !v12Create) continue;
    let id: string;
    try {
      id = eventIdFor(p, version);
    } catch {
      continue;
    }
    if (v12Create && id !== impliedCreate) continue;
    if (i < stateIn.length && typeof p.state_key === "string") stateIds.add(id);
    if (events.has(id)) continue;
    const sig = await checkPduSignatures(p, version, hs.federation.keys);
    if (!sig.ok) {
      hs.log.info("federation: send_join event with a bad signature dropped", { id, reason: sig.reason });
      continue;
    }
    events.set(id, sig.pdu as Pdu);
  }
  // The auth rules against each event's own auth events, oldest first; failing ones (or with failed auth) dropped.
  const ok = new Set<string>();
  const byDepth = [...events.entries()].sort((a, b) => Number(a[1].depth) - Number(b[1].depth));
  for (const [id, p] of byDepth) {
    const own = new Map<StateKey, AuthEvent>();
    // v12: citing the create event is against the rules (3.2).
    let good = Array.isArray(p.auth_events) && !(impliedCreate && (p.auth_events as string[]).includes(impliedCreate));
    for (const a of good ? (p.auth_events as string[]) : []) {
      const ap = events.get(a) ?? trusted.get(a);
      if (!ap || !(ok.has(a) || trusted.has(a)) || typeof ap.state_key !== "string") {
        good = false;
        break;
      }
      own.set(stateKey(ap.type, ap.state_key), authOf(a, ap));
    }
    if (!good) continue;
    // v12: the create event is implied, not cited.
    const createPdu = impliedCreate ? (events.get(impliedCreate) ?? trusted.get(impliedCreate)) : undefined;
    if (impliedCreate && id !== impliedCreate && createPdu && (ok.has(impliedCreate) || trusted.has(impliedCreate)))
      own.set(stateKey("m.room.create", ""), authOf(impliedCreate, createPdu));
    const why = checkAuth(stateResEventOf({ eventId: id, pdu: p, rejected: null }), own, version);
    if (why) hs.log.info("federation: send_join event fails auth, dropped", { id, why });
    else ok.add(id);
  }
  return { events, ok, stateIds };
}

/**
 * Reject an invite (or withdraw a knock) of a room we have no state for (no user of ours joined): make_leave and
 * send_leave through the inviter's server (then the other servers given), and the leave stored here as the invite
 * was (a timeline event of the room, the room's extremities kept) so /sync moves the room out of the invites.
 */
export async function leaveRemote(hs: Homeserver, roomId: string, userId: string, servers: string[]): Promise<string> {
  const candidates = [...new Set(servers)].filter((s) => s && s !== hs.serverName);
  let last: unknown = null;
  for (const server of candidates) {
    try {
      const res = await hs.federation.client.request<{ room_version?: string; event?: Pdu }>(server, {
        method: "GET",
        path: `/_matrix/federation/v1/make_leave/${encodeURIComponent(roomId)}/${encodeURIComponent(userId)}`,
      });
      const version = res.room_version ?? "1";
      const e = res.event;
      if (!isSupportedRoomVersion(version) || !e || typeof e !== "object") throw new Error("no usable template");
      if (e.type !== "m.room.member" || e.room_id !== roomId || e.sender !== userId || e.state_key !== userId)
        throw new Error("a template that is not our leave");
      if (e.content?.membership !== "leave") throw new Error("a template that is not a leave");
      const { signatures: _s, hashes: _h, event_id: _e, unsigned: _u, ...rest } = e;
      const signed = signEvent(
        { ...rest, origin: hs.serverName, origin_server_ts: Date.now() } as Pdu,
        hs.serverName,
        hs.signingKey,
        version,
      );
      const id = eventIdFor(signed, version);
      await hs.federation.client.request(server, {
        method: "PUT",
        path: `/_matrix/federation/v2/send_leave/${encodeURIComponent(roomId)}/${encodeURIComponent(id)}`,
        body: signed,
      });
      await persistOutOfBand(hs, roomId, id, signed, false);
      return id;
    } catch (err) {
      last = err;
      hs.log.info("federation: make_leave/send_leave failed", { server, roomId, err: String(err).slice(0, 200) });
    }
  }
  if (last instanceof AmiError) throw last;
  throw new AmiError(
    "M_UNKNOWN",
    `No server could take the leave of ${roomId}${last ? `: ${String(last)}` : ""}`,
    {},
    502,
  );
}
