/**
 * Third-party identifiers (spec: "Adding Account Administrative Contact Information", and the requestToken
 * endpoints of registration and password reset). This server sends no email or SMS and trusts no identity
 * server, so it holds no 3PIDs (`m.3pid_changes` is disabled in /capabilities): each route still checks its
 * input as the spec defines it, then answers with the spec's error for a server that doesn't support it.
 */
import { z } from "zod";
import { AmiError, type ErrorCode } from "../../core/errors.ts";
import { json, type Route } from "../http/types.ts";
import { checkUia, finishUia } from "../service/uia.ts";
import { parseBody } from "../validate.ts";

const NO_3PIDS = "This server does not support third-party identifiers (email addresses, phone numbers)";

/** The fields every requestToken body has (spec: request_email_validation / request_msisdn_validation). */
const validationRequest = {
  client_secret: z.string(),
  send_attempt: z.number().int(),
  next_link: z.string().optional(),
  id_server: z.string().optional(),
  id_access_token: z.string().optional(),
};
const emailRequest = z.object({ ...validationRequest, email: z.string() });
const msisdnRequest = z.object({ ...validationRequest, country: z.string(), phone_number: z.string() });
const credentials = z.object({
  client_secret: z.string(),
  id_server: z.string(),
  id_access_token: z.string(),
  sid: z.string(),
});
const addBody = z.object({ client_secret: z.string(), sid: z.string(), auth: z.unknown().optional() });
const removeBody = z.object({
  medium: z.enum(["email", "msisdn"]),
  address: z.string(),
  id_server: z.string().optional(),
});

/**
 * A requestToken route: validates the body, then refuses with the error the spec names for its section —
 * 400 M_THREEPID_MEDIUM_NOT_SUPPORTED for adding a contact to an account, 403 M_THREEPID_DENIED for
 * registration and password reset ("the homeserver does not allow the third-party identifier").
 */
function requestToken(path: string, schema: z.ZodType, code: ErrorCode, what: string): Route {
  return {
    method: "POST",
    paths: [path],
    auth: "none",
    rateLimit: true,
    handler: async (req) => {
      parseBody(schema, req.body);
      throw new AmiError(code, `${what} is not supported: ${NO_3PIDS}`);
    },
  };
}

/** /account/3pid/delete and /unbind: the account has no such 3PID, and no identity server was told anything. */
function remove(path: string): Route {
  return {
    method: "POST",
    paths: [path],
    auth: "required",
    rateLimit: true,
    handler: async (req) => {
      parseBody(removeBody, req.body);
      return json({ id_server_unbind_result: "no-support" });
    },
  };
}

const C = "/_matrix/client/v3";

export const routes: Route[] = [
  /** GET /_matrix/client/v3/account/3pid — always empty. */
  {
    method: "GET",
    paths: [`${C}/account/3pid`],
    auth: "required",
    handler: async () => json({ threepids: [] }),
  },
  /** POST /_matrix/client/v3/account/3pid (deprecated: binds through an identity server) — 403 M_FORBIDDEN. */
  {
    method: "POST",
    paths: [`${C}/account/3pid`],
    auth: "required",
    rateLimit: true,
    handler: async (req) => {
      parseBody(z.object({ three_pid_creds: credentials }), req.body);
      throw new AmiError("M_FORBIDDEN", `Third-party identifier changes are disabled: ${NO_3PIDS}`);
    },
  },
  /**
   * POST /_matrix/client/v3/account/3pid/add — UIA (password) as the spec requires; then the session `sid` cannot
   * be a validated one (requestToken never starts any): 400 M_THREEPID_AUTH_FAILED.
   */
  {
    method: "POST",
    paths: [`${C}/account/3pid/add`],
    auth: "required",
    rateLimit: true,
    handler: async (req) => {
      const r = req.requester!;
      parseBody(addBody, req.body);
      const uia = await checkUia(req, [["m.login.password"]], `3pid_add:${r.userId}`, r.userId);
      if (!uia.done) return uia.reply;
      finishUia(req.hs, uia.session);
      throw new AmiError("M_THREEPID_AUTH_FAILED", `No validated third-party identifier session: ${NO_3PIDS}`);
    },
  },
  /** POST /_matrix/client/v3/account/3pid/bind — no identity server is trusted: 403 M_FORBIDDEN. */
  {
    method: "POST",
    paths: [`${C}/account/3pid/bind`],
    auth: "required",
    rateLimit: true,
    handler: async (req) => {
      parseBody(credentials, req.body);
      throw new AmiError("M_FORBIDDEN", `Binding to an identity server is disabled: ${NO_3PIDS}`);
    },
  },
  /** POST /_matrix/client/v3/account/3pid/delete */
  remove(`${C}/account/3pid/delete`),
  /** POST /_matrix/client/v3/account/3pid/unbind */
  remove(`${C}/account/3pid/unbind`),
  /** POST /_matrix/client/v3/account/3pid/email/requestToken */
  requestToken(
    `${C}/account/3pid/email/requestToken`,
    emailRequest,
    "M_THREEPID_MEDIUM_NOT_SUPPORTED",
    "Adding an email address",
  ),
  /** POST /_matrix/client/v3/account/3pid/msisdn/requestToken */
  requestToken(
    `${C}/account/3pid/msisdn/requestToken`,
    msisdnRequest,
    "M_THREEPID_MEDIUM_NOT_SUPPORTED",
    "Adding a phone number",
  ),
  /** POST /_matrix/client/v3/account/password/email/requestToken */
  requestToken(
    `${C}/account/password/email/requestToken`,
    emailRequest,
    "M_THREEPID_DENIED",
    "Password reset by email",
  ),
  /** POST /_matrix/client/v3/account/password/msisdn/requestToken */
  requestToken(
    `${C}/account/password/msisdn/requestToken`,
    msisdnRequest,
    "M_THREEPID_DENIED",
    "Password reset by phone",
  ),
  /** POST /_matrix/client/v3/register/email/requestToken */
  requestToken(
    `${C}/register/email/requestToken`,
    emailRequest,
    "M_THREEPID_DENIED",
    "Registration with an email address",
  ),
  /** POST /_matrix/client/v3/register/msisdn/requestToken */
  requestToken(
    `${C}/register/msisdn/requestToken`,
    msisdnRequest,
    "M_THREEPID_DENIED",
    "Registration with a phone number",
  ),
];
