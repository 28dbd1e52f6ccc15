/** Room membership (spec joining.yaml, leaving.yaml, inviting.yaml, kicking.yaml, banning.yaml, knocking.yaml). */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { parseUserId, serverNameOf } from "../events/ids.ts";
import { joinRemote, leaveRemote } from "../federation/join-out.ts";
import { knockRemote } from "../federation/knock-out.ts";
import { remoteAlias } from "../federation/remote.ts";
import { json, type Route } from "../http/types.ts";
import { forgetRoom, requireRoom, requireRoomId, resolveRoom } from "../service/room-access.ts";
import { parseBody } from "../validate.ts";

const reasonBody = z.object({ reason: z.string().optional() });
const targetBody = z.object({ user_id: z.string(), reason: z.string().optional() });

function targetOf(body: unknown): { userId: string; reason?: string } {
  const b = parseBody(targetBody, body);
  if (!parseUserId(b.user_id)) throw new AmiError("M_INVALID_PARAM", `Invalid user ID '${b.user_id}'`);
  return { userId: b.user_id, reason: b.reason };
}

/** A user of ours is joined to the room (so a local send reaches the room's other servers). */
async function hasLocalMember(req: Parameters<Route["handler"]>[0], roomId: string): Promise<boolean> {
  if (!(await req.hs.store.rooms.getRoom(roomId))) return false;
  const joined = await req.hs.store.events.getMembers(roomId, "join");
  return joined.some((m) => serverNameOf(m.userId) === req.hs.serverName);
}

async function currentMembership(
  req: Parameters<Route["handler"]>[0],
  roomId: string,
  userId: string,
): Promise<string> {
  return (await req.hs.store.events.getMembership(roomId, userId))?.membership ?? "leave";
}

export const routes: Route[] = [
  /** POST /_matrix/client/v3/join/{roomIdOrAlias} and POST /_matrix/client/v3/rooms/{roomId}/join */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/join/{roomIdOrAlias}", "/_matrix/client/v3/rooms/{roomId}/join"],
    auth: "required",
    refuseSuspended: true,
    rateLimit: true,
    async handler(req) {
      const { reason } = parseBody(reasonBody, req.body);
      const { hs } = req;
      const me = req.requester!.userId;
      const servers = [...req.query.getAll("server_name"), ...req.query.getAll("via")];
      const target = req.params.roomId ?? req.params.roomIdOrAlias;
      let roomId: string;
      if (hs.config.federation.enabled && target.startsWith("#") && serverNameOf(target) !== hs.serverName) {
        const found = await remoteAlias(hs, target);
        roomId = found.room_id;
        servers.push(...found.servers);
      } else roomId = req.params.roomId ? requireRoomId(target) : await resolveRoom(hs, target);
      // Not in the room as a server (unknown, or no joined member of ours): the join goes through a resident server.
      // A room we know where only our users ever were stays local.
      if (hs.config.federation.enabled && !(await hasLocalMember(req, roomId))) {
        const room = await hs.store.rooms.getRoom(roomId);
        // Our invite's sender first (an invite is all we may have of the room), then every member's server.
        const mine = room ? await hs.store.events.getMembership(roomId, me) : null;
        const inviter =
          mine?.membership === "invite" ? ((await hs.store.events.getEvent(mine.eventId))?.pdu.sender ?? "") : "";
        const known = room
          ? [inviter, ...(await hs.store.events.getMembers(roomId)).map((m) => m.userId)].map(
              (id) => serverNameOf(id) ?? "",
            )
          : [...servers, serverNameOf(roomId) ?? ""];
        if (known.some((s) => s && s !== hs.serverName)) {
          await joinRemote(hs, roomId, me, [...servers, ...known, serverNameOf(roomId) ?? ""]);
          return json({ room_id: roomId });
        }
      }
      await requireRoom(hs, roomId);
      await hs.rooms.setMembership({ roomId, sender: me, target: me, membership: "join", reason });
      return json({ room_id: roomId });
    },
  },
  /** POST /_matrix/client/v3/knock/{roomIdOrAlias} */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/knock/{roomIdOrAlias}"],
    auth: "required",
    refuseSuspended: true,
    rateLimit: true,
    async handler(req) {
      const { reason } = parseBody(reasonBody, req.body);
      const { hs } = req;
      const me = req.requester!.userId;
      const target = req.params.roomIdOrAlias;
      const servers = [...req.query.getAll("server_name"), ...req.query.getAll("via")];
      let roomId: string;
      if (hs.config.federation.enabled && target.startsWith("#") && serverNameOf(target) !== hs.serverName) {
        const found = await remoteAlias(hs, target);
        roomId = found.room_id;
        servers.push(...found.servers);
      } else roomId = await resolveRoom(hs, target);
      // Not in the room as a server: the knock goes through a resident server (make_knock/send_knock).
      if (hs.config.federation.enabled && !(await hasLocalMember(req, roomId))) {
        const room = await hs.store.rooms.getRoom(roomId);
        const known = room ? (await hs.store.events.getMembers(roomId)).map((m) => serverNameOf(m.userId) ?? "") : [];
        const candidates = [...servers, ...known, serverNameOf(roomId) ?? ""];
        if (candidates.some((s) => s && s !== hs.serverName)) {
          await knockRemote(hs, roomId, me, candidates, reason);
          return json({ room_id: roomId });
        }
      }
      await requireRoom(hs, roomId);
      await hs.rooms.setMembership({ roomId, sender: me, target: me, membership: "knock", reason });
      return json({ room_id: roomId });
    },
  },
  /** POST /_matrix/client/v3/rooms/{roomId}/leave */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/rooms/{roomId}/leave"],
    auth: "required",
    async handler(req) {
      const { reason } = parseBody(reasonBody, req.body);
      const roomId = requireRoomId(req.params.roomId);
      await requireRoom(req.hs, roomId);
      const me = req.requester!.userId;
      const { hs } = req;
      // An invite (or knock) of a room we have no state for: the leave goes through the room's servers.
      const mine = await hs.store.events.getMembership(roomId, me);
      if (
        hs.config.federation.enabled &&
        (mine?.membership === "invite" || mine?.membership === "knock") &&
        !(await hasLocalMember(req, roomId))
      ) {
        const sender = (await hs.store.events.getEvent(mine.eventId))?.pdu.sender ?? "";
        const others = (await hs.store.events.getMembers(roomId)).map((m) => serverNameOf(m.userId) ?? "");
        await leaveRemote(hs, roomId, me, [serverNameOf(sender) ?? "", ...others, serverNameOf(roomId) ?? ""]);
        return json({});
      }
      await hs.rooms.setMembership({ roomId, sender: me, target: me, membership: "leave", reason });
      return json({});
    },
  },
  /** POST /_matrix/client/v3/rooms/{roomId}/forget */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/rooms/{roomId}/forget"],
    auth: "required",
    async handler(req) {
      await forgetRoom(req.hs, req.requester!.userId, req.params.roomId);
      return json({});
    },
  },
  /** POST /_matrix/client/v3/rooms/{roomId}/invite */
  targetRoute("invite", "invite", { rateLimit: true, allowThirdParty: false }),
  /** POST /_matrix/client/v3/rooms/{roomId}/kick — removes someone in, invited to or knocking on the room; not an unban. */
  targetRoute("kick", "leave", { from: ["join", "invite", "knock"], notFrom: "is not in the room" }),
  /** POST /_matrix/client/v3/rooms/{roomId}/ban */
  targetRoute("ban", "ban", {}),
  /** POST /_matrix/client/v3/rooms/{roomId}/unban */
  targetRoute("unban", "leave", { from: ["ban"], notFrom: "is not banned" }),
];

/** invite, kick, ban and unban share one shape: a target user (and reason) in the body, a membership for them. */
function targetRoute(
  action: string,
  membership: "invite" | "leave" | "ban",
  opts: { rateLimit?: boolean; allowThirdParty?: boolean; from?: string[]; notFrom?: string },
): Route {
  return {
    method: "POST",
    paths: [`/_matrix/client/v3/rooms/{roomId}/${action}`],
    auth: "required",
    // A suspended account may not invite (spec "Account suspension"); it may still kick, ban and unban.
    refuseSuspended: membership === "invite",
    rateLimit: opts.rateLimit,
    async handler(req) {
      if (opts.allowThirdParty === false && req.body && "medium" in req.body && !("user_id" in req.body)) {
        throw new AmiError("M_FORBIDDEN", "Third-party invites are not supported (no identity server)");
      }
      const t = targetOf(req.body);
      const roomId = requireRoomId(req.params.roomId);
      await requireRoom(req.hs, roomId);
      if (opts.from && !opts.from.includes(await currentMembership(req, roomId, t.userId))) {
        throw new AmiError("M_FORBIDDEN", `${t.userId} ${opts.notFrom}`);
      }
      const sender = req.requester!.userId;
      // A shadow-banned user's invites are answered and dropped (service/shadow-ban.ts).
      if (membership === "invite" && req.requester!.shadowBanned) return json({});
      await req.hs.rooms.setMembership({ roomId, sender, target: t.userId, membership, reason: t.reason });
      return json({});
    },
  };
}
