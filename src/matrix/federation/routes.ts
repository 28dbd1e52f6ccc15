/** The shape of a federation handler: X-Matrix authenticated, the origin server handed to it. */
import type { MatrixRequest, Reply, Route } from "../http/types.ts";

export interface FederationRoute extends Omit<Route, "auth" | "handler"> {
  handler(req: MatrixRequest, origin: string): Promise<Reply>;
}

/** A route whose requests must carry a valid X-Matrix signature (hs.federation.authenticate) before the handler. */
export function signedRoute(r: FederationRoute): Route {
  return {
    ...r,
    auth: "none",
    async handler(req) {
      const origin = await req.hs.federation.authenticate(req);
      return r.handler(req, origin);
    },
  };
}
