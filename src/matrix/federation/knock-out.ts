/**
 * The knocking side of a knock over federation (spec server-server "Knocking upon a room"): a local user knocks on
 * a room this server is not in. make_knock then send_knock are tried with each candidate server in turn
 * (join-out.ts `throughServers`, `makeTemplate`, shared with joins), the template filled (our origin,
 * now, the knocker's profile, the reason) and signed, its event ID the reference hash, and sent by send_knock (v1), which answers the
 * room's stripped state. The knock is then stored as a federated invite is (membership.ts): a state-only event
 * of the room, in no timeline (the room row created when new, a known room's extremities kept: we have no state to build on) with
 * the stripped state in `unsigned.knock_room_state`, which /sync's knock section shows. Withdrawing it is
 * `leaveRemote` (join-out.ts); being let in is an invite, then a join.
 */
import { AmiError } from "../../core/errors.ts";
import { signEvent } from "../events/event-signing.ts";
import { eventIdFor } from "../events/hashing.ts";
import type { Homeserver } from "../hs.ts";
import { makeTemplate, persistOutOfBand, throughServers } from "./join-out.ts";
import { strippedCreateProblem } from "./membership.ts";

type Pdu = Record<string, any>;

/** Most stripped state events kept from a send_knock answer (as for invites). */
const MAX_KNOCK_STATE = 50;

/** Knock `userId` (ours) on `roomId` through one of `servers`. Returns the knock's event ID. */
export async function knockRemote(
  hs: Homeserver,
  roomId: string,
  userId: string,
  servers: string[],
  reason?: string,
): Promise<string> {
  const candidates = [...new Set(servers)].filter((s) => s && s !== hs.serverName);
  if (candidates.length === 0)
    throw new AmiError("M_NOT_FOUND", `Room ${roomId} is not known here and no server to knock through was given`);
  return throughServers(hs, "knock", roomId, candidates, async (server) => {
    const { version, event: e } = await makeTemplate(hs, server, "knock", roomId, userId);
    const { signatures: _s, hashes: _h, event_id: _e, unsigned: _u, ...rest } = e;
    // The knocker's profile goes in the knock, as a local knock's does (rooms.ts setMembership).
    const user = await hs.store.accounts.getUser(userId);
    const content = { ...rest.content };
    if (user?.displayname) content.displayname = user.displayname;
    if (user?.avatarUrl) content.avatar_url = user.avatarUrl;
    if (reason !== undefined) content.reason = reason;
    const signed = signEvent(
      { ...rest, content, origin: hs.serverName, origin_server_ts: Date.now() } as Pdu,
      hs.serverName,
      hs.signingKey,
      version,
    );
    const id = eventIdFor(signed, version);
    const answer = await hs.federation.client.request<{ knock_room_state?: unknown }>(server, {
      method: "PUT",
      path: `/_matrix/federation/v1/send_knock/${encodeURIComponent(roomId)}/${encodeURIComponent(id)}`,
      body: signed,
    });
    const state = (Array.isArray(answer.knock_room_state) ? answer.knock_room_state : [])
      .filter((x): x is Pdu => !!x && typeof x === "object" && !Array.isArray(x) && typeof x.type === "string")
      // v12: a create event that is not the room ID's is dropped (spec: improper entries SHOULD be removed).
      .filter((x) => x.type !== "m.room.create" || strippedCreateProblem([x], roomId, version) === null)
      .slice(0, MAX_KNOCK_STATE);
    await store(hs, roomId, version, id, signed, state);
    return id;
  });
}

async function store(
  hs: Homeserver,
  roomId: string,
  version: string,
  id: string,
  signed: Pdu,
  state: Pdu[],
): Promise<void> {
  const room = await hs.store.rooms.getRoom(roomId);
  if (room && room.version !== version)
    throw new AmiError("M_BAD_JSON", `Room ${roomId} has version ${room.version} here, not ${version}`);
  if (!room) {
    const create = state.find((e) => e.type === "m.room.create");
    await hs.store.rooms.createRoom({
      roomId,
      version,
      creator: typeof create?.sender === "string" ? create.sender : "",
      createdTs: Date.now(),
      isPublic: false,
    });
  }
  // Out of band, as a received invite is (federation/membership.ts): in no timeline.
  await persistOutOfBand(hs, roomId, id, { ...signed, unsigned: { knock_room_state: state } }, true);
}
