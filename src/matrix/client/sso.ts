/**
 * Login providers this server does not have (spec: "Client login via SSO", "OAuth 2.0 API" / auth_metadata):
 * deliberate routes, so a client probing them gets a clear answer. /login lists no m.login.sso flow.
 */
import { AmiError } from "../../core/errors.ts";
import type { MatrixRequest, Reply, Route } from "../http/types.ts";

/** Both redirect routes need the spec's required `redirectUrl` first. */
function noSso(req: MatrixRequest): never {
  if (req.query.get("redirectUrl") === null) throw new AmiError("M_MISSING_PARAM", "'redirectUrl': missing");
  const action = req.query.get("action");
  if (action !== null && action !== "login" && action !== "register")
    throw new AmiError("M_INVALID_PARAM", "'action' must be 'login' or 'register'");
  if (req.params.idpId !== undefined)
    throw new AmiError("M_NOT_FOUND", `Unknown identity provider '${req.params.idpId}': no SSO is configured`);
  // The route is known (Synapse without SSO leaves it unknown: M_UNRECOGNIZED); what is missing is a provider.
  throw new AmiError("M_NOT_FOUND", "Single sign-on is not configured on this server; log in with a password");
}

export const routes: Route[] = [
  /** GET /_matrix/client/v3/login/sso/redirect — no SSO: 404 M_NOT_FOUND, no provider (after checking redirectUrl). */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/login/sso/redirect"],
    auth: "none",
    rateLimit: true,
    handler: async (req): Promise<Reply> => noSso(req),
  },
  /** GET /_matrix/client/v3/login/sso/redirect/{idpId} — no such IdP: 404 (the spec's answer), M_NOT_FOUND. */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/login/sso/redirect/{idpId}"],
    auth: "none",
    rateLimit: true,
    handler: async (req): Promise<Reply> => noSso(req),
  },
  /**
   * GET /_matrix/client/v1/auth_metadata — the spec's answer of a homeserver without the OAuth 2.0 API:
   * 404 M_UNRECOGNIZED, which tells clients to use the legacy API (/login, /register).
   */
  {
    method: "GET",
    paths: ["/_matrix/client/v1/auth_metadata"],
    auth: "none",
    handler: async (): Promise<Reply> => {
      throw new AmiError("M_UNRECOGNIZED", "Legacy authentication is in use on this homeserver (no OAuth 2.0 API)");
    },
  },
];
