/**
 * Queries another server may make of us (spec server-server query.yaml, public_rooms.yaml): a local user's public
 * profile, where a local room alias points, and our published room directory.
 */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { isValidRoomAlias, serverNameOf } from "../events/ids.ts";
import type { Route } from "../http/types.ts";
import { parseLocalUserId } from "../service/registration.ts";
import { publicRooms } from "../service/room-directory.ts";
import { parseBody, queryInt } from "../validate.ts";
import { signedRoute } from "./routes.ts";

const FIELDS = new Set(["displayname", "avatar_url"]);

const publicRoomsBody = z.object({
  limit: z.number().int().min(0).optional(),
  since: z.string().max(1000).optional(),
  filter: z
    .object({
      generic_search_term: z.string().max(1000).optional(),
      room_types: z.array(z.string().nullable()).max(100).optional(),
    })
    .optional(),
  include_all_networks: z.boolean().optional(),
  third_party_instance_id: z.string().optional(),
});

export const queryRoutes: Route[] = [
  /** GET /_matrix/federation/v1/query/profile — displayname/avatar_url of a local user (`field` picks one). */
  signedRoute({
    method: "GET",
    paths: ["/_matrix/federation/v1/query/profile"],
    async handler(req) {
      const userId = req.query.get("user_id");
      if (!userId) throw new AmiError("M_MISSING_PARAM", "user_id is required");
      const field = req.query.get("field");
      let local = false;
      try {
        local = parseLocalUserId(req.hs, userId).local;
      } catch {
        throw new AmiError("M_INVALID_PARAM", "user_id is not a user ID");
      }
      if (!local) throw new AmiError("M_INVALID_PARAM", "user_id is not a user of this server");
      const user = await req.hs.store.accounts.getUser(userId);
      if (!user || user.deactivated) throw new AmiError("M_NOT_FOUND", "Profile was not found");
      const profile: Record<string, string> = {};
      if (user.displayname) profile.displayname = user.displayname;
      if (user.avatarUrl) profile.avatar_url = user.avatarUrl;
      if (field !== null) {
        if (!FIELDS.has(field)) return { json: {} };
        return { json: field in profile ? { [field]: profile[field] } : {} };
      }
      return { json: profile };
    },
  }),
  /** GET /_matrix/federation/v1/query/directory — the room a local alias names, and servers that can join it. */
  signedRoute({
    method: "GET",
    paths: ["/_matrix/federation/v1/query/directory"],
    async handler(req) {
      const alias = req.query.get("room_alias");
      if (!alias) throw new AmiError("M_MISSING_PARAM", "room_alias is required");
      if (!isValidRoomAlias(alias)) throw new AmiError("M_INVALID_PARAM", "room_alias is not a room alias");
      if (serverNameOf(alias) !== req.hs.serverName)
        throw new AmiError("M_INVALID_PARAM", "room_alias is not an alias of this server");
      const found = await req.hs.store.rooms.getAlias(alias);
      if (!found) throw new AmiError("M_NOT_FOUND", `Room alias ${alias} not found`);
      // This server first, then every other server with a joined member (they can all serve a join).
      const servers = [req.hs.serverName];
      for (const m of await req.hs.store.events.getMembers(found.roomId, "join")) {
        const s = serverNameOf(m.userId);
        if (s && !servers.includes(s)) servers.push(s);
      }
      return { json: { room_id: found.roomId, servers } };
    },
  }),
  /** GET /_matrix/federation/v1/publicRooms — our published rooms (paginated like the client API). */
  signedRoute({
    method: "GET",
    paths: ["/_matrix/federation/v1/publicRooms"],
    async handler(req) {
      const limit = req.query.has("limit") ? queryInt(req.query, "limit", 0, 0) : undefined;
      return { json: await publicRooms(req.hs, { limit, since: req.query.get("since") ?? undefined }) };
    },
  }),
  /** POST /_matrix/federation/v1/publicRooms — the same, filtered (generic_search_term, room_types). */
  signedRoute({
    method: "POST",
    paths: ["/_matrix/federation/v1/publicRooms"],
    async handler(req) {
      const b = parseBody(publicRoomsBody, req.body);
      return {
        json: await publicRooms(req.hs, {
          limit: b.limit,
          since: b.since,
          term: b.filter?.generic_search_term,
          roomTypes: b.filter?.room_types,
        }),
      };
    },
  }),
];
