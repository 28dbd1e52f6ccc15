/**
 * Synapse-compatible admin API (the subset tools use): shared-secret registration exactly as Synapse does it
 * (so `register_new_matrix_user` works) and the server version. Users: admin-users.ts; rooms: admin-rooms.ts; media:
 * admin-media.ts; reports: admin-reports.ts; registration tokens: admin-tokens.ts.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { randomString } from "../events/ids.ts";
import type { Homeserver } from "../hs.ts";
import { json, type Route } from "../http/types.ts";
import { createAccount, localpartFor } from "../service/registration.ts";
import { parseBody } from "../validate.ts";

const NONCE_MS = 60_000;
const noncesByHs = new WeakMap<Homeserver, Map<string, number>>();

function nonces(hs: Homeserver): Map<string, number> {
  let m = noncesByHs.get(hs);
  if (!m) {
    m = new Map();
    noncesByHs.set(hs, m);
  }
  const now = Date.now();
  for (const [k, until] of m) if (until < now) m.delete(k);
  return m;
}

/** Synapse's mac: HMAC-SHA1(secret, nonce \0 user \0 password \0 admin|notadmin [\0 user_type]), hex. */
export function registrationMac(
  secret: string,
  p: { nonce: string; username: string; password: string; admin: boolean; userType?: string | null },
): string {
  const h = createHmac("sha1", Buffer.from(secret, "utf8"));
  h.update(p.nonce, "utf8")
    .update("\0")
    .update(p.username, "utf8")
    .update("\0")
    .update(p.password, "utf8")
    .update("\0");
  h.update(p.admin ? "admin" : "notadmin");
  if (p.userType) h.update("\0").update(p.userType, "utf8");
  return h.digest("hex");
}

const sharedRegisterBody = z.object({
  nonce: z.string(),
  username: z.string().max(512),
  password: z.string().max(512),
  admin: z.boolean().optional(),
  user_type: z.string().nullable().optional(),
  displayname: z.string().max(256).optional(),
  mac: z.string(),
});

let serverVersion: string | undefined;
function version(): string {
  serverVersion ??= (
    JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string }
  ).version;
  return serverVersion;
}

export const routes: Route[] = [
  /** GET /_synapse/admin/v1/register */
  {
    method: "GET",
    paths: ["/_synapse/admin/v1/register"],
    auth: "none",
    rateLimit: true,
    handler: async (req) => {
      const nonce = randomString(32);
      nonces(req.hs).set(nonce, Date.now() + NONCE_MS);
      return json({ nonce });
    },
  },
  /** POST /_synapse/admin/v1/register */
  {
    method: "POST",
    paths: ["/_synapse/admin/v1/register"],
    auth: "none",
    rateLimit: true,
    handler: async (req) => {
      const { hs } = req;
      const b = parseBody(sharedRegisterBody, req.body);
      // As Synapse: the nonce is spent even when the mac is wrong.
      if (!nonces(hs).delete(b.nonce)) throw new AmiError("M_INVALID_PARAM", "unrecognised nonce");
      if (b.username.includes("\0") || b.password.includes("\0"))
        throw new AmiError("M_INVALID_PARAM", "Invalid username or password");
      const want = Buffer.from(
        registrationMac(hs.registrationSharedSecret, { ...b, admin: b.admin ?? false, userType: b.user_type }),
      );
      const got = Buffer.from(b.mac.toLowerCase());
      if (want.length !== got.length || !timingSafeEqual(want, got))
        throw new AmiError("M_FORBIDDEN", "HMAC incorrect");
      const localpart = localpartFor(hs, b.username);
      const userId = await createAccount(hs, {
        localpart,
        password: b.password,
        admin: b.admin ?? false,
        displayname: b.displayname,
      });
      hs.log.info("registered (shared secret)", { userId, admin: b.admin ?? false });
      const s = await hs.auth.createSession(userId, { ip: req.ip });
      return json({ user_id: userId, access_token: s.accessToken, device_id: s.deviceId, home_server: hs.serverName });
    },
  },
  /** GET /_synapse/admin/v1/server_version (unauthenticated, as in Synapse) */
  {
    method: "GET",
    paths: ["/_synapse/admin/v1/server_version"],
    auth: "none",
    handler: async () => json({ server_version: `ami-streams ${version()}` }),
  },
];
