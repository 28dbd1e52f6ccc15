/** Account registration (spec: "Account registration and management" / register). */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import type { Homeserver } from "../hs.ts";
import { json, type Route } from "../http/types.ts";
import {
  createAccount,
  generateLocalpart,
  localpartFor,
  MAX_PASSWORD_LENGTH,
  registrationTokenUsable,
  usernameAvailable,
} from "../service/registration.ts";
import { checkUia, finishUia } from "../service/uia.ts";
import { parseBody } from "../validate.ts";
import { sessionJson } from "./login.ts";

const registerBody = z.object({
  username: z.string().optional(),
  password: z.string().optional(),
  device_id: z.string().min(1).max(255).optional(),
  initial_device_display_name: z.string().max(512).optional(),
  inhibit_login: z.boolean().optional(),
  refresh_token: z.boolean().optional(),
  auth: z.unknown().optional(),
});

function requireOpen(hs: Homeserver): void {
  if (!hs.config.registration.enabled) throw new AmiError("M_FORBIDDEN", "Registration has been disabled");
}

const flowsFor = (hs: Homeserver): string[][] =>
  hs.config.registration.requireToken ? [["m.login.registration_token"]] : [["m.login.dummy"]];

export const routes: Route[] = [
  /** GET /_matrix/client/v3/register/available */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/register/available"],
    auth: "none",
    rateLimit: true,
    handler: async (req) => {
      requireOpen(req.hs);
      const username = req.query.get("username");
      if (!username) throw new AmiError("M_MISSING_PARAM", "'username': missing");
      const l = localpartFor(req.hs, username);
      if (!(await usernameAvailable(req.hs, l))) throw new AmiError("M_USER_IN_USE", "User ID already taken");
      return json({ available: true });
    },
  },
  /** GET /_matrix/client/v1/register/m.login.registration_token/validity */
  {
    method: "GET",
    paths: ["/_matrix/client/v1/register/m.login.registration_token/validity"],
    auth: "none",
    rateLimit: true,
    handler: async (req) => {
      requireOpen(req.hs);
      const token = req.query.get("token");
      if (token === null) throw new AmiError("M_MISSING_PARAM", "'token': missing");
      if (token.length > 64) return json({ valid: false });
      return json({ valid: registrationTokenUsable(await req.hs.store.accounts.getRegistrationToken(token)) });
    },
  },
  /** POST /_matrix/client/v3/register */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/register"],
    auth: "none",
    rateLimit: true,
    handler: async (req) => {
      const { hs } = req;
      const kind = req.query.get("kind") ?? "user";
      if (kind === "guest") throw new AmiError("M_FORBIDDEN", "Guest access is disabled");
      if (kind !== "user") throw new AmiError("M_INVALID_PARAM", "'kind' must be 'user' or 'guest'");
      requireOpen(hs);
      const b = parseBody(registerBody, req.body);
      // Check the name before UIA so that clients learn early that it is taken or invalid.
      let localpart = b.username === undefined ? undefined : localpartFor(hs, b.username);
      if (localpart !== undefined && !(await usernameAvailable(hs, localpart))) {
        throw new AmiError("M_USER_IN_USE", "User ID already taken");
      }
      const uia = await checkUia(req, flowsFor(hs), "register");
      if (!uia.done) return uia.reply;
      if (b.password === undefined) throw new AmiError("M_MISSING_PARAM", "'password': missing");
      if (b.password.length > MAX_PASSWORD_LENGTH) throw new AmiError("M_INVALID_PARAM", "Password too long");
      localpart ??= await generateLocalpart(hs);
      const token = uia.session.registrationToken;
      if (token !== undefined && !(await hs.store.accounts.consumeRegistrationToken(token, Date.now()))) {
        throw new AmiError("M_FORBIDDEN", "Registration token is no longer valid");
      }
      const userId = await createAccount(hs, { localpart, password: b.password });
      finishUia(hs, uia.session);
      hs.log.info("registered", { userId });
      if (b.inhibit_login) return json({ user_id: userId, home_server: hs.serverName });
      const s = await hs.auth.createSession(userId, {
        deviceId: b.device_id,
        displayName: b.initial_device_display_name,
        ip: req.ip,
        refreshToken: b.refresh_token === true,
      });
      return json({ user_id: userId, ...sessionJson(s), home_server: hs.serverName });
    },
  },
];
