/**
 * Third-party networks (spec third_party_lookup.yaml). Protocols come from application-service bridges; this
 * homeserver has none, so it answers as Synapse does without appservices: no protocols, an unknown protocol is
 * 404 M_NOT_FOUND, and every lookup finds nothing (`[]`).
 */
import { AmiError } from "../../core/errors.ts";
import { json, type Route } from "../http/types.ts";

const T = "/_matrix/client/v3/thirdparty";

/** A lookup that finds nothing; `required` names a query parameter the spec requires (400 when absent). */
function nothing(path: string, required?: string): Route {
  return {
    method: "GET",
    paths: [path],
    auth: "required",
    async handler(req) {
      if (required && !req.query.get(required))
        throw new AmiError("M_MISSING_PARAM", `Missing query parameter '${required}'`);
      return json([]);
    },
  };
}

export const routes: Route[] = [
  /** GET /_matrix/client/v3/thirdparty/protocols */
  { method: "GET", paths: [`${T}/protocols`], auth: "required", handler: async () => json({}) },
  /** GET /_matrix/client/v3/thirdparty/protocol/{protocol} */
  {
    method: "GET",
    paths: [`${T}/protocol/{protocol}`],
    auth: "required",
    async handler(req) {
      throw new AmiError("M_NOT_FOUND", `Unknown protocol '${req.params.protocol.slice(0, 100)}'`);
    },
  },
  /** GET /_matrix/client/v3/thirdparty/location/{protocol} */
  nothing(`${T}/location/{protocol}`),
  /** GET /_matrix/client/v3/thirdparty/user/{protocol} */
  nothing(`${T}/user/{protocol}`),
  /** GET /_matrix/client/v3/thirdparty/location */
  nothing(`${T}/location`, "alias"),
  /** GET /_matrix/client/v3/thirdparty/user */
  nothing(`${T}/user`, "userid"),
];
