/** Refreshing access tokens (spec: "Refreshing access tokens" / refresh). */
import { z } from "zod";
import { json, type Route } from "../http/types.ts";
import { authOf } from "../service/auth.ts";
import { parseBody } from "../validate.ts";

const refreshBody = z.object({ refresh_token: z.string() });

export const routes: Route[] = [
  /**
   * POST /_matrix/client/v3/refresh — no access token needed (the client's has usually expired; one sent along is
   * ignored). Unknown or retired refresh token: 401 M_UNKNOWN_TOKEN, soft_logout true.
   */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/refresh"],
    auth: "none",
    rateLimit: true,
    handler: async (req) => {
      const b = parseBody(refreshBody, req.body);
      const s = await authOf(req.hs).refresh(b.refresh_token);
      return json({ access_token: s.accessToken, refresh_token: s.refreshToken, expires_in_ms: s.expiresInMs });
    },
  },
];
