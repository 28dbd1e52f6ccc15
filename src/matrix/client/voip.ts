/** Spec section "Voice over IP" (voip.yaml): TURN credentials in the shared-secret scheme coturn checks. */
import { turnCredentials } from "../../turn/credentials.ts";
import { json, type Route } from "../http/types.ts";

export const routes: Route[] = [
  /** GET /_matrix/client/v3/voip/turnServer */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/voip/turnServer"],
    auth: "required",
    rateLimit: true,
    async handler(req) {
      const v = req.hs.config.voip;
      // As Synapse: no TURN configured is an empty object, which clients read as "no TURN servers".
      if (v.turnUris.length === 0 || !v.turnSharedSecret) return json({});
      return json(turnCredentials(v.turnSharedSecret, req.requester!.userId, v.turnUserLifetimeSeconds, v.turnUris));
    },
  },
];
