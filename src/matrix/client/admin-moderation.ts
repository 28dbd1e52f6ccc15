/**
 * The client-server administration API (spec admin.yaml): whois, and account locking and suspension (v1.18).
 * Authorisation is checked before any lookup, so a non-admin cannot probe which accounts exist.
 */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { json, type MatrixRequest, type Route } from "../http/types.ts";
import { authOf } from "../service/auth.ts";
import { parseLocalUserId } from "../service/registration.ts";
import type { UserRow } from "../store/types.ts";
import { parseBody } from "../validate.ts";
import { requireAdmin } from "./admin-kit.ts";

/** The local, existing, not deactivated target of a lock/suspend call (400 remote, 404 unknown or deactivated). */
async function moderatedUser(req: MatrixRequest): Promise<UserRow> {
  requireAdmin(req);
  const userId = req.params.userId;
  if (!parseLocalUserId(req.hs, userId).local)
    throw new AmiError("M_INVALID_PARAM", "User does not belong to the local server");
  const user = await req.hs.store.accounts.getUser(userId);
  if (!user || user.deactivated) throw new AmiError("M_NOT_FOUND", "User not found");
  if (user.admin && user.userId !== req.requester!.userId)
    throw new AmiError("M_FORBIDDEN", "The target user is a server administrator");
  return user;
}

/** GET and PUT of one moderation flag: `locked` or `suspended`. */
function flagRoutes(segment: "lock" | "suspend", flag: "locked" | "suspended"): Route[] {
  const body = z.object({ [flag]: z.boolean() });
  const path = `/_matrix/client/v1/admin/${segment}/{userId}`;
  return [
    {
      method: "GET",
      paths: [path],
      auth: "required",
      async handler(req) {
        const user = await moderatedUser(req);
        return json({ [flag]: !!user[flag] });
      },
    },
    {
      method: "PUT",
      paths: [path],
      auth: "required",
      async handler(req) {
        const value = parseBody(body, req.body)[flag] as boolean;
        const user = await moderatedUser(req);
        // An admin may not lock or suspend themself (nor another admin, refused above).
        if (user.admin) throw new AmiError("M_FORBIDDEN", `You may not ${segment} a server administrator`);
        if (!!user[flag] !== value) {
          await req.hs.store.accounts.updateUser(user.userId, { [flag]: value });
          authOf(req.hs).moderationChanged(user.userId, flag === "locked" && value);
        }
        return json({ [flag]: value });
      },
    },
  ];
}

/** whois devices (client-server and Synapse admin): each device one session with one connection, if ever seen. */
export async function whoisDevices(
  hs: MatrixRequest["hs"],
  userId: string,
): Promise<Record<string, { sessions: { connections: Record<string, unknown>[] }[] }>> {
  const devices: Record<string, { sessions: { connections: Record<string, unknown>[] }[] }> = {};
  for (const d of await hs.store.accounts.listDevices(userId)) {
    const connections: Record<string, unknown>[] = [];
    if (d.lastSeenTs !== null) {
      const c: Record<string, unknown> = { last_seen: d.lastSeenTs };
      if (d.lastSeenIp) c.ip = d.lastSeenIp;
      if (d.lastSeenUserAgent) c.user_agent = d.lastSeenUserAgent;
      connections.push(c);
    }
    devices[d.deviceId] = { sessions: [{ connections }] };
  }
  return devices;
}

export const routes: Route[] = [
  /**
   * GET /_matrix/client/v3/admin/whois/{userId} — the user themself or a server admin: each device as one session
   * with one connection (the device's last seen time, IP and user agent; none if never seen).
   */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/admin/whois/{userId}"],
    auth: "required",
    async handler(req) {
      const r = req.requester!;
      const userId = req.params.userId;
      if (r.userId !== userId && !r.isAdmin) throw new AmiError("M_FORBIDDEN", "You are not a server admin");
      if (!parseLocalUserId(req.hs, userId).local) throw new AmiError("M_INVALID_PARAM", "Can only whois a local user");
      if (!(await req.hs.store.accounts.getUser(userId))) throw new AmiError("M_NOT_FOUND", "User not found");
      return json({ user_id: userId, devices: await whoisDevices(req.hs, userId) });
    },
  },
  /** GET and PUT /_matrix/client/v1/admin/lock/{userId} */
  ...flagRoutes("lock", "locked"),
  /** GET and PUT /_matrix/client/v1/admin/suspend/{userId} */
  ...flagRoutes("suspend", "suspended"),
];
