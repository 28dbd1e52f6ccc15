/**
 * Synapse-compatible admin API (the subset tools use): shared-secret registration exactly as Synapse does it
 * (so `register_new_matrix_user` works), users, deactivation, rooms, server version.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { randomString } from "../events/ids.ts";
import type { Homeserver } from "../hs.ts";
import { json, type MatrixRequest, type Route } from "../http/types.ts";
import { authOf } from "../service/auth.ts";
import { createAccount, deactivateAccount, localpartFor, parseLocalUserId } from "../service/registration.ts";
import type { UserRow } from "../store/types.ts";
import { parseBody, queryInt } from "../validate.ts";

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

export function requireAdmin(req: MatrixRequest): void {
  if (!req.requester?.isAdmin) throw new AmiError("M_FORBIDDEN", "You are not a server admin");
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

/** Synapse's admin user object. */
function userJson(u: UserRow): Record<string, unknown> {
  return {
    name: u.userId,
    displayname: u.displayname,
    avatar_url: u.avatarUrl,
    admin: u.admin,
    deactivated: u.deactivated,
    is_guest: u.isGuest,
    user_type: null,
    creation_ts: u.createdTs,
    shadow_banned: false,
    locked: false,
    erased: false,
    approved: true,
    threepids: [],
    external_ids: [],
  };
}

const putUserBody = z.object({
  password: z.string().min(1).max(512).optional(),
  logout_devices: z.boolean().optional(),
  displayname: z.string().max(256).nullable().optional(),
  avatar_url: z.string().max(1024).nullable().optional(),
  admin: z.boolean().optional(),
  deactivated: z.boolean().optional(),
});

async function localUser(req: MatrixRequest): Promise<{ userId: string; user: UserRow | null }> {
  const userId = req.params.userId;
  if (!parseLocalUserId(req.hs, userId).local) throw new AmiError("M_INVALID_PARAM", "Can only look up local users");
  return { userId, user: await req.hs.store.accounts.getUser(userId) };
}

function boolQuery(q: URLSearchParams, name: string, def: boolean): boolean {
  const v = q.get(name);
  if (v === null) return def;
  if (v !== "true" && v !== "false") throw new AmiError("M_INVALID_PARAM", `'${name}' must be true or false`);
  return v === "true";
}

/** Synapse-style room summary; from current state. */
async function roomJson(hs: Homeserver, room: { roomId: string; version: string; creator: string; isPublic: boolean }) {
  const state = await hs.store.events.getCurrentState(room.roomId);
  const c = (type: string) => state.find((e) => e.type === type && e.stateKey === "")?.pdu.content ?? {};
  const joined = state.filter((e) => e.type === "m.room.member" && e.pdu.content?.membership === "join");
  return {
    room_id: room.roomId,
    name: c("m.room.name").name ?? null,
    topic: c("m.room.topic").topic ?? null,
    canonical_alias: c("m.room.canonical_alias").alias ?? null,
    joined_members: joined.length,
    joined_local_members: joined.filter((e) => e.stateKey?.endsWith(`:${hs.serverName}`)).length,
    version: room.version,
    creator: room.creator,
    encryption: c("m.room.encryption").algorithm ?? null,
    federatable: c("m.room.create")["m.federate"] !== false,
    public: room.isPublic,
    join_rules: c("m.room.join_rules").join_rule ?? null,
    guest_access: c("m.room.guest_access").guest_access ?? null,
    history_visibility: c("m.room.history_visibility").history_visibility ?? null,
    state_events: state.length,
    room_type: c("m.room.create").type ?? null,
  };
}

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
  /** GET /_synapse/admin/v2/users */
  {
    method: "GET",
    paths: ["/_synapse/admin/v2/users"],
    auth: "required",
    handler: async (req) => {
      requireAdmin(req);
      const limit = queryInt(req.query, "limit", 100, 1, 1000);
      const from = req.query.get("from") ?? undefined;
      const includeDeactivated = boolQuery(req.query, "deactivated", false);
      const rows = await req.hs.store.accounts.listUsers({ from, limit: limit + 1, includeDeactivated });
      const page = rows.slice(0, limit);
      const out: Record<string, unknown> = {
        users: page.map(userJson),
        total: await req.hs.store.accounts.countUsers(),
      };
      if (rows.length > limit) out.next_token = page[page.length - 1].userId;
      return json(out);
    },
  },
  /** GET /_synapse/admin/v2/users/{userId} */
  {
    method: "GET",
    paths: ["/_synapse/admin/v2/users/{userId}"],
    auth: "required",
    handler: async (req) => {
      requireAdmin(req);
      const { user } = await localUser(req);
      if (!user) throw new AmiError("M_NOT_FOUND", "User not found");
      return json(userJson(user));
    },
  },
  /** PUT /_synapse/admin/v2/users/{userId}: create (201) or modify (200) */
  {
    method: "PUT",
    paths: ["/_synapse/admin/v2/users/{userId}"],
    auth: "required",
    handler: async (req) => {
      requireAdmin(req);
      const { hs } = req;
      const b = parseBody(putUserBody, req.body);
      const { userId, user } = await localUser(req);
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
      if (b.password !== undefined && b.deactivated !== true)
        patch.passwordHash = await hs.auth.hashPassword(b.password);
      await hs.store.accounts.updateUser(userId, patch);
      authOf(hs).forgetUser(userId);
      if (b.password !== undefined && b.logout_devices !== false) await authOf(hs).logoutAll(userId);
      if (b.deactivated === true && !user.deactivated) await deactivateAccount(hs, userId);
      return json(userJson((await hs.store.accounts.getUser(userId))!));
    },
  },
  /** POST /_synapse/admin/v1/deactivate/{userId} */
  {
    method: "POST",
    paths: ["/_synapse/admin/v1/deactivate/{userId}"],
    auth: "required",
    handler: async (req) => {
      requireAdmin(req);
      parseBody(z.object({ erase: z.boolean().optional() }), req.body);
      const { userId, user } = await localUser(req);
      if (!user) throw new AmiError("M_NOT_FOUND", "User not found");
      await deactivateAccount(req.hs, userId);
      return json({ id_server_unbind_result: "success" });
    },
  },
  /** GET /_synapse/admin/v1/rooms (`from` is an opaque cursor here: the last room ID of the previous page) */
  {
    method: "GET",
    paths: ["/_synapse/admin/v1/rooms"],
    auth: "required",
    handler: async (req) => {
      requireAdmin(req);
      const { hs } = req;
      const limit = queryInt(req.query, "limit", 100, 1, 1000);
      const from = req.query.get("from") ?? undefined;
      const rows = await hs.store.rooms.listRooms({ from: from || undefined, limit: limit + 1 });
      const page = rows.slice(0, limit);
      const rooms = [];
      for (const r of page) rooms.push(await roomJson(hs, r));
      const out: Record<string, unknown> = { rooms, offset: 0, total_rooms: await hs.store.rooms.countRooms() };
      if (rows.length > limit) out.next_batch = page[page.length - 1].roomId;
      return json(out);
    },
  },
];
