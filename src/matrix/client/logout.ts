/** Logout (spec: "Login" / logout, logout/all). */
import { json, type Route } from "../http/types.ts";
import { authOf } from "../service/auth.ts";

export const routes: Route[] = [
  /** POST /_matrix/client/v3/logout */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/logout"],
    auth: "required",
    allowLocked: true,
    handler: async (req) => {
      await authOf(req.hs).logout(req.requester!);
      return json({});
    },
  },
  /** POST /_matrix/client/v3/logout/all */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/logout/all"],
    auth: "required",
    allowLocked: true,
    handler: async (req) => {
      await authOf(req.hs).logoutAll(req.requester!.userId);
      return json({});
    },
  },
];
