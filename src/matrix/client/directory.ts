/** Room aliases and the published room directory (spec directory.yaml, list_public_rooms.yaml). */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import {
  isValidRoomAlias,
  isValidServerName,
  powerLevelOf,
  requiredLevelForEvent,
  serverNameOf,
} from "../events/index.ts";
import { remoteAlias } from "../federation/remote.ts";
import type { Homeserver } from "../hs.ts";
import { json, type MatrixRequest, type Route } from "../http/types.ts";
import { historyVisibility, requireRoom, requireRoomId } from "../service/room-access.ts";
import { publicRooms } from "../service/room-directory.ts";
import { authEventOf } from "../service/room-head.ts";
import { parseBody, queryInt } from "../validate.ts";

function aliasParam(hs: Homeserver, alias: string, mustBeLocal: boolean): string {
  if (!isValidRoomAlias(alias)) throw new AmiError("M_INVALID_PARAM", `Invalid room alias '${alias}'`);
  if (mustBeLocal && serverNameOf(alias) !== hs.serverName)
    throw new AmiError("M_INVALID_PARAM", `Room alias must be on ${hs.serverName}`);
  return alias;
}

/** Server admins, or room members allowed to set m.room.canonical_alias, manage a room's aliases and listing. */
async function canManage(hs: Homeserver, roomId: string, userId: string, isAdmin: boolean): Promise<boolean> {
  if (isAdmin) return true;
  if ((await hs.store.events.getMembership(roomId, userId))?.membership !== "join") return false;
  const [pl, create] = await Promise.all([
    hs.store.events.getCurrentStateEvent(roomId, "m.room.power_levels", ""),
    hs.store.events.getCurrentStateEvent(roomId, "m.room.create", ""),
  ]);
  const levels = pl?.pdu.content;
  return (
    powerLevelOf(userId, levels, create ? authEventOf(create) : undefined) >=
    requiredLevelForEvent("m.room.canonical_alias", true, levels)
  );
}

const searchBody = z.object({
  limit: z.number().int().min(0).optional(),
  since: z.string().optional(),
  filter: z
    .object({ generic_search_term: z.string().optional(), room_types: z.array(z.string().nullable()).optional() })
    .optional(),
  include_all_networks: z.boolean().optional(),
  third_party_instance_id: z.string().optional(),
});

/** The `server` whose directory is asked for when it is another one (null: ours); isolated mode has none. */
function remoteServer(req: MatrixRequest): string | null {
  const server = req.query.get("server");
  if (server === null || server === req.hs.serverName) return null;
  if (!req.hs.config.federation.enabled)
    throw new AmiError("M_NOT_FOUND", `This server does not federate; no directory for ${server}`);
  if (!isValidServerName(server)) throw new AmiError("M_INVALID_PARAM", "'server' is not a server name");
  return server;
}

export const routes: Route[] = [
  /** GET /_matrix/client/v3/directory/room/{roomAlias} */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/directory/room/{roomAlias}"],
    auth: "optional",
    async handler(req) {
      const alias = aliasParam(req.hs, req.params.roomAlias, false);
      // Another server's alias: asked of that server (isolated mode: not found, as no alias of it can be here).
      if (serverNameOf(alias) !== req.hs.serverName && req.hs.config.federation.enabled)
        return json(await remoteAlias(req.hs, alias));
      const found = await req.hs.store.rooms.getAlias(alias);
      if (!found) throw new AmiError("M_NOT_FOUND", `Room alias ${alias} not found`);
      return json({ room_id: found.roomId, servers: [req.hs.serverName] });
    },
  },
  /** PUT /_matrix/client/v3/directory/room/{roomAlias} */
  {
    method: "PUT",
    paths: ["/_matrix/client/v3/directory/room/{roomAlias}"],
    auth: "required",
    refuseSuspended: true,
    async handler(req) {
      const alias = aliasParam(req.hs, req.params.roomAlias, true);
      const { room_id: roomId } = parseBody(z.object({ room_id: z.string() }), req.body);
      await requireRoom(req.hs, roomId);
      const r = req.requester!;
      if (!r.isAdmin && (await req.hs.store.events.getMembership(roomId, r.userId))?.membership !== "join") {
        throw new AmiError("M_FORBIDDEN", "You must be in the room to give it an alias");
      }
      if (!(await req.hs.store.rooms.createAlias(alias, roomId, r.userId))) {
        throw new AmiError("M_UNKNOWN", `Room alias ${alias} already exists`, {}, 409);
      }
      return json({});
    },
  },
  /** DELETE /_matrix/client/v3/directory/room/{roomAlias} */
  {
    method: "DELETE",
    paths: ["/_matrix/client/v3/directory/room/{roomAlias}"],
    auth: "required",
    async handler(req) {
      const alias = aliasParam(req.hs, req.params.roomAlias, false);
      const found = await req.hs.store.rooms.getAlias(alias);
      if (!found) throw new AmiError("M_NOT_FOUND", `Room alias ${alias} not found`);
      const r = req.requester!;
      if (found.creator !== r.userId && !(await canManage(req.hs, found.roomId, r.userId, r.isAdmin))) {
        throw new AmiError("M_FORBIDDEN", "You may not delete this alias");
      }
      await req.hs.store.rooms.deleteAlias(alias);
      return json({});
    },
  },
  /** GET /_matrix/client/v3/rooms/{roomId}/aliases */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/rooms/{roomId}/aliases"],
    auth: "required",
    async handler(req) {
      const roomId = requireRoomId(req.params.roomId);
      await requireRoom(req.hs, roomId);
      const r = req.requester!;
      const joined = (await req.hs.store.events.getMembership(roomId, r.userId))?.membership === "join";
      if (!joined && !r.isAdmin && (await historyVisibility(req.hs, roomId)) !== "world_readable") {
        throw new AmiError("M_FORBIDDEN", "You are not a member of the room");
      }
      return json({ aliases: await req.hs.store.rooms.getAliasesForRoom(roomId) });
    },
  },
  /** GET /_matrix/client/v3/directory/list/room/{roomId} */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/directory/list/room/{roomId}"],
    auth: "none",
    async handler(req) {
      const room = await req.hs.store.rooms.getRoom(requireRoomId(req.params.roomId));
      if (!room) throw new AmiError("M_NOT_FOUND", "Room not found");
      return json({ visibility: room.isPublic ? "public" : "private" });
    },
  },
  /** PUT /_matrix/client/v3/directory/list/room/{roomId} */
  {
    method: "PUT",
    paths: ["/_matrix/client/v3/directory/list/room/{roomId}"],
    auth: "required",
    async handler(req) {
      const roomId = requireRoomId(req.params.roomId);
      const { visibility = "public" } = parseBody(
        z.object({ visibility: z.enum(["public", "private"]).optional() }),
        req.body,
      );
      await requireRoom(req.hs, roomId);
      const r = req.requester!;
      if (!(await canManage(req.hs, roomId, r.userId, r.isAdmin)))
        throw new AmiError("M_FORBIDDEN", "You may not change this room's visibility");
      await req.hs.store.rooms.setRoomPublic(roomId, visibility === "public");
      return json({});
    },
  },
  /** GET /_matrix/client/v3/publicRooms */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/publicRooms"],
    auth: "optional",
    async handler(req) {
      const remote = remoteServer(req);
      const limit = req.query.has("limit") ? queryInt(req.query, "limit", 0, 0) : undefined;
      const since = req.query.get("since") ?? undefined;
      if (remote) {
        // Another server's directory, asked of it (GET /_matrix/federation/v1/publicRooms).
        const q = new URLSearchParams();
        if (limit !== undefined) q.set("limit", String(limit));
        if (since !== undefined) q.set("since", since);
        const qs = q.size ? `?${q}` : "";
        return json(
          await req.hs.federation.client.request(remote, {
            method: "GET",
            path: `/_matrix/federation/v1/publicRooms${qs}`,
          }),
        );
      }
      return json(await publicRooms(req.hs, { limit, since }));
    },
  },
  /** POST /_matrix/client/v3/publicRooms */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/publicRooms"],
    auth: "required",
    async handler(req) {
      const remote = remoteServer(req);
      const b = parseBody(searchBody, req.body);
      if (remote)
        return json(
          await req.hs.federation.client.request(remote, {
            method: "POST",
            path: "/_matrix/federation/v1/publicRooms",
            body: b,
          }),
        );
      return json(
        await publicRooms(req.hs, {
          limit: b.limit,
          since: b.since,
          term: b.filter?.generic_search_term,
          roomTypes: b.filter?.room_types,
        }),
      );
    },
  },
];
