/** Login (spec: "Login"): password login only. */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { json, type Route } from "../http/types.ts";
import { verifyPasswordOrDummy } from "../service/passwords.ts";
import { loginUserId } from "../service/registration.ts";
import { parseBody } from "../validate.ts";

const loginBody = z.object({
  type: z.string(),
  identifier: z.object({ type: z.string(), user: z.string().optional() }).optional(),
  user: z.string().optional(),
  password: z.string().optional(),
  device_id: z.string().min(1).max(255).optional(),
  initial_device_display_name: z.string().max(512).optional(),
  refresh_token: z.boolean().optional(),
});

const BAD_LOGIN = "Invalid username or password";

export const routes: Route[] = [
  /** GET /_matrix/client/v3/login */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/login"],
    auth: "none",
    rateLimit: true,
    handler: async () => json({ flows: [{ type: "m.login.password" }] }),
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
      if (b.type !== "m.login.password") throw new AmiError("M_INVALID_PARAM", `Unknown login type ${b.type}`);
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
      const s = await hs.auth.createSession(user.userId, {
        deviceId: b.device_id,
        displayName: b.initial_device_display_name,
        ip: req.ip,
      });
      return json({
        user_id: user.userId,
        access_token: s.accessToken,
        device_id: s.deviceId,
        home_server: hs.serverName,
        well_known: { "m.homeserver": { base_url: hs.publicBaseUrl } },
      });
    },
  },
];
