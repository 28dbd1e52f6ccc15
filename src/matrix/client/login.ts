/** Login (spec: "Login"): m.login.password, and m.login.token when login via an existing session is enabled. */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import type { Homeserver } from "../hs.ts";
import { json, type Route } from "../http/types.ts";
import type { Session } from "../service/auth.ts";
import { verifyPasswordOrDummy } from "../service/passwords.ts";
import { loginUserId } from "../service/registration.ts";
import { shortTokenUser } from "../service/short-tokens.ts";
import { parseBody } from "../validate.ts";

const loginBody = z.object({
  type: z.string(),
  identifier: z.object({ type: z.string(), user: z.string().optional() }).optional(),
  user: z.string().optional(),
  password: z.string().optional(),
  token: z.string().optional(),
  device_id: z.string().min(1).max(255).optional(),
  initial_device_display_name: z.string().max(512).optional(),
  refresh_token: z.boolean().optional(),
});
type LoginBody = z.infer<typeof loginBody>;

const BAD_LOGIN = "Invalid username or password";

/** The session fields of a /login or /register answer (refresh_token and expires_in_ms only when asked for). */
export function sessionJson(s: Session): Record<string, unknown> {
  return {
    access_token: s.accessToken,
    device_id: s.deviceId,
    ...(s.refreshToken !== undefined ? { refresh_token: s.refreshToken, expires_in_ms: s.expiresInMs } : {}),
  };
}

/** m.login.password: the user whose password matched, else 403. */
async function passwordUser(hs: Homeserver, b: LoginBody): Promise<string> {
  let who = b.user;
  if (b.identifier) {
    if (b.identifier.type !== "m.id.user") {
      throw new AmiError("M_INVALID_PARAM", `Unsupported identifier type ${b.identifier.type}`);
    }
    who = b.identifier.user;
  }
  if (who === undefined) throw new AmiError("M_MISSING_PARAM", "'identifier.user': missing");
  if (b.password === undefined) throw new AmiError("M_MISSING_PARAM", "'password': missing");
  const userId = loginUserId(hs, who);
  // User IDs are stored lowercase (as registered); accept the case a person typed.
  const user = userId
    ? ((await hs.store.accounts.getUser(userId)) ?? (await hs.store.accounts.getUser(userId.toLowerCase())))
    : null;
  // Every failed login runs the password hash (against a dummy when there is no usable one): answering an
  // unknown user at once would tell who has an account.
  const hash = user && !user.deactivated ? user.passwordHash : null;
  const ok = await verifyPasswordOrDummy(b.password, hash, (p, h) => hs.auth.verifyPassword(p, h));
  if (!ok || !user) throw new AmiError("M_FORBIDDEN", BAD_LOGIN);
  return user.userId;
}

/** m.login.token: the token's user (the token is used up), else 403 as Synapse answers. */
async function tokenUser(hs: Homeserver, b: LoginBody): Promise<string> {
  if (b.token === undefined) throw new AmiError("M_MISSING_PARAM", "'token': missing");
  const userId = await shortTokenUser(hs, "login", b.token, true);
  if (!userId) throw new AmiError("M_FORBIDDEN", "Invalid or expired login token");
  return userId;
}

export const routes: Route[] = [
  /** GET /_matrix/client/v3/login */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/login"],
    auth: "none",
    rateLimit: true,
    handler: async (req) =>
      json({
        flows: [
          { type: "m.login.password" },
          ...(req.hs.config.auth.loginTokenEnabled ? [{ type: "m.login.token", get_login_token: true }] : []),
        ],
      }),
  },
  /** POST /_matrix/client/v3/login */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/login"],
    auth: "none",
    rateLimit: true,
    handler: async (req) => {
      const { hs } = req;
      const b = parseBody(loginBody, req.body);
      let userId: string;
      if (b.type === "m.login.password") userId = await passwordUser(hs, b);
      else if (b.type === "m.login.token" && hs.config.auth.loginTokenEnabled) userId = await tokenUser(hs, b);
      else throw new AmiError("M_INVALID_PARAM", `Unknown login type ${b.type}`);
      // A locked account gets no new session (as Synapse): its tokens would only answer M_USER_LOCKED.
      if ((await hs.store.accounts.getUser(userId))?.locked)
        throw new AmiError("M_USER_LOCKED", "This account has been locked", { soft_logout: true });
      const s = await hs.auth.createSession(userId, {
        deviceId: b.device_id,
        displayName: b.initial_device_display_name,
        ip: req.ip,
        refreshToken: b.refresh_token === true,
      });
      return json({
        user_id: userId,
        ...sessionJson(s),
        home_server: hs.serverName,
        well_known: { "m.homeserver": { base_url: hs.publicBaseUrl } },
      });
    },
  },
];
