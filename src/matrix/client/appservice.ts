/**
 * Application-service client routes (spec: "Application Service API" / ping, room directory). This server has
 * no application services, so no access token is an appservice's: every caller gets the spec's 403 M_FORBIDDEN
 * ("the access token doesn't belong to an appservice").
 */
import { AmiError } from "../../core/errors.ts";
import type { Reply, Route } from "../http/types.ts";

const notAppservice = (): never => {
  throw new AmiError("M_FORBIDDEN", "Only an application service may call this, and this server has none");
};

export const routes: Route[] = [
  /** POST /_matrix/client/v1/appservice/{appserviceId}/ping */
  {
    method: "POST",
    paths: ["/_matrix/client/v1/appservice/{appserviceId}/ping"],
    auth: "required",
    rateLimit: true,
    handler: async (): Promise<Reply> => notAppservice(),
  },
  /** PUT /_matrix/client/v3/directory/list/appservice/{networkId}/{roomId} */
  {
    method: "PUT",
    paths: ["/_matrix/client/v3/directory/list/appservice/{networkId}/{roomId}"],
    auth: "required",
    rateLimit: true,
    handler: async (): Promise<Reply> => notAppservice(),
  },
];
