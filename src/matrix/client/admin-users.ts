/**
 * Synapse's user admin API (docs/admin_api/user_admin_api.md): list, query, create-or-modify, deactivate (with
 * erase), reset password, whois, login as a user (behind `matrix.admin.allowLoginAsUser`), shadow-ban, joined
 * rooms and devices. Media of a user is in admin-media.ts.
 */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { json, type MatrixRequest, type Reply, type Route } from "../http/types.ts";
import { authOf } from "../service/auth.ts";
import { createAccount, deactivateAccount, localpartFor } from "../service/registration.ts";
import { USER_ORDERS, type UserRow } from "../store/types.ts";
import { parseBody } from "../validate.ts";
import {
  adminRoute,
  boolQuery,
  enumQuery,
  existingLocalUser,
  localUser,
  nextToken,
  pageQuery,
  userJson,
} from "./admin-kit.ts";
import { whoisDevices } from "./admin-moderation.ts";

const putUserBody = z.object({
  password: z.string().min(1).max(512).optional(),
  logout_devices: z.boolean().optional(),
  displayname: z.string().max(256).nullable().optional(),
  avatar_url: z.string().max(1024).nullable().optional(),
  admin: z.boolean().optional(),
  deactivated: z.boolean().optional(),
  user_type: z.string().nullable().optional(),
});

const resetPasswordBody = z.object({
  new_password: z.string().min(1).max(512),
  logout_devices: z.boolean().optional(),
});

const userPath = (p: string) => `/_synapse/admin/v1/users/{userId}${p}`;

/** Synapse's device object of the admin API. */
function deviceJson(
  userId: string,
  d: {
    deviceId: string;
    displayName: string | null;
    lastSeenTs: number | null;
    lastSeenIp: string | null;
    lastSeenUserAgent?: string | null;
  },
) {
  return {
    device_id: d.deviceId,
    display_name: d.displayName,
    last_seen_ip: d.lastSeenIp,
    last_seen_user_agent: d.lastSeenUserAgent ?? null,
    last_seen_ts: d.lastSeenTs,
    user_id: userId,
    dehydrated: false,
  };
}

/** Set the user's shadow ban and drop cached sessions so their next request sees it. */
async function setShadowBan(req: MatrixRequest, banned: boolean): Promise<Reply> {
  const user = await existingLocalUser(req);
  await req.hs.store.accounts.updateUser(user.userId, { shadowBanned: banned });
  authOf(req.hs).forgetUser(user.userId);
  req.hs.log.info(banned ? "shadow-banned" : "shadow ban lifted", { userId: user.userId, by: req.requester!.userId });
  return json({});
}

async function putUser(req: MatrixRequest, b: z.infer<typeof putUserBody>, userId: string, user: UserRow | null) {
  const { hs } = req;
  if (!user) {
    const localpart = localpartFor(hs, userId);
    if (`@${localpart}:${hs.serverName}` !== userId)
      throw new AmiError("M_INVALID_USERNAME", "User IDs must be lowercase");
    await createAccount(hs, {
      localpart,
      password: b.password ?? null,
      admin: b.admin ?? false,
      displayname: b.displayname,
    });
    if (b.avatar_url) await hs.store.accounts.updateUser(userId, { avatarUrl: b.avatar_url });
    if (b.deactivated) await deactivateAccount(hs, userId);
    return { status: 201, json: userJson((await hs.store.accounts.getUser(userId))!) };
  }
  const patch: Parameters<typeof hs.store.accounts.updateUser>[1] = {};
  if (b.displayname !== undefined) patch.displayname = b.displayname || null;
  if (b.avatar_url !== undefined) patch.avatarUrl = b.avatar_url || null;
  if (b.admin !== undefined) patch.admin = b.admin;
  if (b.deactivated === false) patch.deactivated = false;
  if (b.password !== undefined && b.deactivated !== true) patch.passwordHash = await hs.auth.hashPassword(b.password);
  await hs.store.accounts.updateUser(userId, patch);
  authOf(hs).forgetUser(userId);
  if (b.password !== undefined && b.logout_devices !== false) await authOf(hs).logoutAll(userId);
  if (b.deactivated === true && !user.deactivated) await deactivateAccount(hs, userId);
  return json(userJson((await hs.store.accounts.getUser(userId))!));
}

export const routes: Route[] = [
  /** GET /_synapse/admin/v2/users */
  adminRoute("GET", ["/_synapse/admin/v2/users"], async (req) => {
    const q = req.query;
    const { offset, limit, dir } = pageQuery(q);
    const name = q.get("name") || undefined;
    const { rows, total } = await req.hs.store.accounts.queryUsers({
      filter: {
        includeDeactivated: boolQuery(q, "deactivated", false),
        guests: boolQuery(q, "guests", true),
        admins: boolQuery(q, "admins", undefined),
        name,
        serverName: req.hs.serverName,
        // As Synapse: user_id is ignored when name is given.
        userIdLike: name ? undefined : q.get("user_id") || undefined,
      },
      order: enumQuery(q, "order_by", USER_ORDERS, "name"),
      dir,
      offset,
      limit,
    });
    // Synapse gives this listing's next_token as a string.
    const { next_token } = nextToken(offset, rows.length, total);
    return json({
      users: rows.map(userJson),
      total,
      ...(next_token === undefined ? {} : { next_token: String(next_token) }),
    });
  }),
  /** GET /_synapse/admin/v2/users/{userId} */
  adminRoute("GET", ["/_synapse/admin/v2/users/{userId}"], async (req) => {
    return json(userJson(await existingLocalUser(req)));
  }),
  /** PUT /_synapse/admin/v2/users/{userId}: create (201) or modify (200) */
  adminRoute("PUT", ["/_synapse/admin/v2/users/{userId}"], async (req) => {
    const b = parseBody(putUserBody, req.body);
    if (b.user_type) throw new AmiError("M_INVALID_PARAM", "Unknown user_type (this server has none)");
    const { userId, user } = await localUser(req);
    return putUser(req, b, userId, user);
  }),
  /** POST /_synapse/admin/v1/deactivate/{userId} (`erase`: the display name and avatar go too) */
  adminRoute("POST", ["/_synapse/admin/v1/deactivate/{userId}"], async (req) => {
    const b = parseBody(z.object({ erase: z.boolean().optional() }), req.body ?? {});
    const user = await existingLocalUser(req);
    await deactivateAccount(req.hs, user.userId);
    if (b.erase) await req.hs.store.accounts.updateUser(user.userId, { displayname: null, avatarUrl: null });
    return json({ id_server_unbind_result: "success" });
  }),
  /** POST /_synapse/admin/v1/reset_password/{userId} */
  adminRoute("POST", ["/_synapse/admin/v1/reset_password/{userId}"], async (req) => {
    const b = parseBody(resetPasswordBody, req.body);
    const user = await existingLocalUser(req);
    if (user.deactivated) throw new AmiError("M_FORBIDDEN", "The user is deactivated");
    await req.hs.store.accounts.updateUser(user.userId, {
      passwordHash: await req.hs.auth.hashPassword(b.new_password),
    });
    if (b.logout_devices !== false) await authOf(req.hs).logoutAll(user.userId);
    return json({});
  }),
  /** GET /_synapse/admin/v1/whois/{userId}: as the client-server whois (last-seen time, IP, user agent per device). */
  adminRoute("GET", ["/_synapse/admin/v1/whois/{userId}"], async (req) => {
    const user = await existingLocalUser(req);
    return json({ user_id: user.userId, devices: await whoisDevices(req.hs, user.userId) });
  }),
  /** POST /_synapse/admin/v1/users/{userId}/login (only with matrix.admin.allowLoginAsUser) */
  adminRoute("POST", [userPath("/login")], async (req) => {
    if (!req.hs.config.admin.allowLoginAsUser)
      throw new AmiError("M_FORBIDDEN", "Login as a user is disabled (matrix.admin.allowLoginAsUser)");
    const b = parseBody(z.object({ valid_until_ms: z.number().int().nullable().optional() }), req.body ?? {});
    // Tokens here do not expire: refuse rather than hand out a token that outlives what was asked.
    if (b.valid_until_ms != null) throw new AmiError("M_INVALID_PARAM", "valid_until_ms is not supported");
    const user = await existingLocalUser(req);
    if (user.userId === req.requester!.userId)
      throw new AmiError("M_INVALID_PARAM", "Cannot use admin API to login as self");
    if (user.deactivated) throw new AmiError("M_FORBIDDEN", "The user is deactivated");
    const s = await authOf(req.hs).createSession(user.userId, { displayName: "admin login" });
    req.hs.log.warn("admin logged in as user", {
      userId: user.userId,
      by: req.requester!.userId,
      deviceId: s.deviceId,
    });
    return json({ access_token: s.accessToken });
  }),
  /** POST /_synapse/admin/v1/users/{userId}/shadow_ban */
  adminRoute("POST", [userPath("/shadow_ban")], (req) => setShadowBan(req, true)),
  /** DELETE /_synapse/admin/v1/users/{userId}/shadow_ban */
  adminRoute("DELETE", [userPath("/shadow_ban")], (req) => setShadowBan(req, false)),
  /** GET /_synapse/admin/v1/users/{userId}/admin (matrix-js-sdk's isSynapseAdministrator asks this) */
  adminRoute("GET", [userPath("/admin")], async (req) => json({ admin: (await existingLocalUser(req)).admin })),
  /** PUT /_synapse/admin/v1/users/{userId}/admin (an admin cannot take their own rights away, as Synapse) */
  adminRoute("PUT", [userPath("/admin")], async (req) => {
    const { admin } = parseBody(z.object({ admin: z.boolean() }), req.body);
    const user = await existingLocalUser(req);
    if (user.userId === req.requester!.userId && !admin)
      throw new AmiError("M_FORBIDDEN", "You may not demote yourself.");
    await req.hs.store.accounts.updateUser(user.userId, { admin });
    authOf(req.hs).forgetUser(user.userId);
    return json({});
  }),
  /** GET /_synapse/admin/v1/users/{userId}/joined_rooms */
  adminRoute("GET", [userPath("/joined_rooms")], async (req) => {
    const { userId } = await localUser(req);
    const joined = (await req.hs.store.events.getRoomsForUser(userId))
      .filter((m) => m.membership === "join")
      .map((m) => m.roomId);
    return json({ joined_rooms: joined, total: joined.length });
  }),
  /** GET /_synapse/admin/v2/users/{userId}/devices */
  adminRoute("GET", ["/_synapse/admin/v2/users/{userId}/devices"], async (req) => {
    const user = await existingLocalUser(req);
    const devices = (await req.hs.store.accounts.listDevices(user.userId)).map((d) => deviceJson(user.userId, d));
    return json({ devices, total: devices.length });
  }),
  /** POST /_synapse/admin/v2/users/{userId}/delete_devices */
  adminRoute("POST", ["/_synapse/admin/v2/users/{userId}/delete_devices"], async (req) => {
    const b = parseBody(z.object({ devices: z.array(z.string().max(255)).max(1000) }), req.body);
    const user = await existingLocalUser(req);
    await authOf(req.hs).deleteDevices(user.userId, b.devices);
    return json({});
  }),
  /** GET /_synapse/admin/v2/users/{userId}/devices/{deviceId} */
  adminRoute("GET", ["/_synapse/admin/v2/users/{userId}/devices/{deviceId}"], async (req) => {
    const user = await existingLocalUser(req);
    const d = await req.hs.store.accounts.getDevice(user.userId, req.params.deviceId);
    if (!d) throw new AmiError("M_NOT_FOUND", "No device found");
    return json(deviceJson(user.userId, d));
  }),
  /** PUT /_synapse/admin/v2/users/{userId}/devices/{deviceId} */
  adminRoute("PUT", ["/_synapse/admin/v2/users/{userId}/devices/{deviceId}"], async (req) => {
    const b = parseBody(z.object({ display_name: z.string().max(256).optional() }), req.body);
    const user = await existingLocalUser(req);
    const d = await req.hs.store.accounts.getDevice(user.userId, req.params.deviceId);
    if (!d) throw new AmiError("M_NOT_FOUND", "No device found");
    if (b.display_name !== undefined)
      await req.hs.store.accounts.updateDevice(user.userId, d.deviceId, { displayName: b.display_name });
    return json({});
  }),
  /** DELETE /_synapse/admin/v2/users/{userId}/devices/{deviceId} (a missing device is not an error, as Synapse) */
  adminRoute("DELETE", ["/_synapse/admin/v2/users/{userId}/devices/{deviceId}"], async (req) => {
    const user = await existingLocalUser(req);
    await authOf(req.hs).deleteDevices(user.userId, [req.params.deviceId]);
    return json({});
  }),
];
