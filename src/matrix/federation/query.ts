/** Queries (spec server-server query.yaml): a local user's public profile for another server. */
import { AmiError } from "../../core/errors.ts";
import type { Route } from "../http/types.ts";
import { parseLocalUserId } from "../service/registration.ts";
import { signedRoute } from "./routes.ts";

const FIELDS = new Set(["displayname", "avatar_url"]);

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
];
