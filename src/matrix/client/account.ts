/** Account management (spec: "Account registration and management"): whoami, password, deactivate (3PIDs: threepid.ts). */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { json, type Route } from "../http/types.ts";
import { authOf } from "../service/auth.ts";
import { deactivateAccount, MAX_PASSWORD_LENGTH } from "../service/registration.ts";
import { checkUia, finishUia } from "../service/uia.ts";
import { parseBody } from "../validate.ts";

const PASSWORD_FLOWS = [["m.login.password"]];

const passwordBody = z.object({
  new_password: z.string().optional(),
  logout_devices: z.boolean().optional(),
  auth: z.unknown().optional(),
});

const deactivateBody = z.object({
  auth: z.unknown().optional(),
  erase: z.boolean().optional(),
  id_server: z.string().optional(),
});

export const routes: Route[] = [
  /** GET /_matrix/client/v3/account/whoami */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/account/whoami"],
    auth: "required",
    handler: async (req) =>
      json({ user_id: req.requester!.userId, device_id: req.requester!.deviceId, is_guest: false }),
  },
  /** POST /_matrix/client/v3/account/password */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/account/password"],
    auth: "required",
    rateLimit: true,
    handler: async (req) => {
      const { hs } = req;
      const r = req.requester!;
      const b = parseBody(passwordBody, req.body);
      const uia = await checkUia(req, PASSWORD_FLOWS, `password:${r.userId}`, r.userId);
      if (!uia.done) return uia.reply;
      if (b.new_password === undefined) throw new AmiError("M_MISSING_PARAM", "'new_password': missing");
      if (b.new_password.length === 0) throw new AmiError("M_WEAK_PASSWORD", "Password must not be empty");
      if (b.new_password.length > MAX_PASSWORD_LENGTH) throw new AmiError("M_INVALID_PARAM", "Password too long");
      await hs.store.accounts.updateUser(r.userId, { passwordHash: await hs.auth.hashPassword(b.new_password) });
      finishUia(hs, uia.session);
      // Spec: logout_devices (default true) revokes every other device and its tokens.
      if (b.logout_devices !== false) await authOf(hs).logoutAll(r.userId, r.deviceId);
      return json({});
    },
  },
  /** POST /_matrix/client/v3/account/deactivate */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/account/deactivate"],
    auth: "required",
    rateLimit: true,
    handler: async (req) => {
      const r = req.requester!;
      parseBody(deactivateBody, req.body);
      const uia = await checkUia(req, PASSWORD_FLOWS, `deactivate:${r.userId}`, r.userId);
      if (!uia.done) return uia.reply;
      await deactivateAccount(req.hs, r.userId);
      finishUia(req.hs, uia.session);
      req.hs.log.info("deactivated", { userId: r.userId });
      return json({ id_server_unbind_result: "no-support" });
    },
  },
];
