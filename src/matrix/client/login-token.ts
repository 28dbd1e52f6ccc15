/** Login via an existing session (spec: "Login" / login/get_token): a single-use m.login.token for another device. */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { json, type Route } from "../http/types.ts";
import { issueShortToken, LOGIN_TOKEN_MS } from "../service/short-tokens.ts";
import { checkUia, finishUia } from "../service/uia.ts";
import { parseBody } from "../validate.ts";

const FLOWS = [["m.login.password"]];

const getTokenBody = z.object({ auth: z.unknown().optional() });

export const routes: Route[] = [
  /**
   * POST /_matrix/client/v1/login/get_token — with matrix.auth.loginTokenEnabled only (else 400 M_FORBIDDEN, the
   * spec's answer to a user who may not); UIA every time (the spec: servers MUST always re-prompt here).
   */
  {
    method: "POST",
    paths: ["/_matrix/client/v1/login/get_token"],
    auth: "required",
    rateLimit: true,
    handler: async (req) => {
      const { hs } = req;
      const r = req.requester!;
      if (!hs.config.auth.loginTokenEnabled)
        throw new AmiError("M_FORBIDDEN", "Login via an existing session is disabled on this server", {}, 400);
      parseBody(getTokenBody, req.body);
      const uia = await checkUia(req, FLOWS, `get_login_token:${r.userId}`, r.userId);
      if (!uia.done) return uia.reply;
      finishUia(hs, uia.session);
      const token = await issueShortToken(hs, "login", r.userId, LOGIN_TOKEN_MS);
      return json({ login_token: token, expires_in_ms: LOGIN_TOKEN_MS });
    },
  },
];
