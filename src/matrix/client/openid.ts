/**
 * OpenID (spec: client-server "OpenID" and server-server "OpenID"): a user gets a token proving their identity
 * to a third party (a widget backend), which asks this homeserver who it stands for. The userinfo endpoint is a
 * federation route served on the homeserver's own port, with the client API's permissive CORS (the token in the
 * query is the only credential, as the spec defines it).
 */
import { AmiError } from "../../core/errors.ts";
import { json, type Route } from "../http/types.ts";
import { issueShortToken, OPENID_TOKEN_MS, shortTokenUser } from "../service/short-tokens.ts";

export const routes: Route[] = [
  /** POST /_matrix/client/v3/user/{userId}/openid/request_token — only for oneself (403 otherwise). */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/user/{userId}/openid/request_token"],
    auth: "required",
    rateLimit: true,
    handler: async (req) => {
      const { hs } = req;
      const r = req.requester!;
      if (req.params.userId !== r.userId)
        throw new AmiError("M_FORBIDDEN", "Cannot request OpenID tokens for other users");
      const token = await issueShortToken(hs, "openid", r.userId, OPENID_TOKEN_MS);
      return json({
        access_token: token,
        token_type: "Bearer",
        matrix_server_name: hs.serverName,
        expires_in: OPENID_TOKEN_MS / 1000,
      });
    },
  },
  /** GET /_matrix/federation/v1/openid/userinfo — `{sub}` for a valid OpenID token, else 401 M_UNKNOWN_TOKEN. */
  {
    method: "GET",
    paths: ["/_matrix/federation/v1/openid/userinfo"],
    auth: "none",
    rateLimit: true,
    handler: async (req) => {
      const token = req.query.get("access_token");
      if (token === null) throw new AmiError("M_MISSING_TOKEN", "'access_token' query parameter: missing");
      const userId = await shortTokenUser(req.hs, "openid", token, false);
      if (!userId) throw new AmiError("M_UNKNOWN_TOKEN", "Unknown or expired OpenID token");
      return json({ sub: userId });
    },
  },
];
