/** `ami-streams matrix user create|list|show|deactivate|reset-password|shadow-ban` (MCP: matrix_user_*). */
import { z } from "zod";
import { defineOp } from "../../core/ops.ts";
import { asService, fullUserId, registerWithSecret } from "./client.ts";

export const userCreate = defineOp({
  name: "matrix.user.create",
  summary: "Create a Matrix user on the running homeserver (shared-secret registration)",
  description:
    "Registers through /_synapse/admin/v1/register with the homeserver's shared secret, as register_new_matrix_user does.",
  input: z.object({
    username: z.string().min(1).describe("localpart, e.g. alice"),
    password: z.string().min(1),
    admin: z.boolean().default(false).describe("make the user a server admin"),
    displayname: z.string().optional(),
  }),
  output: z.object({ userId: z.string(), admin: z.boolean() }),
  annotations: { readOnly: false, destructive: false, idempotent: false },
  positional: ["username"],
  human: (o) => `created ${o.userId}${o.admin ? " (admin)" : ""}`,
  async run(i, ctx) {
    const r = await registerWithSecret(ctx, i);
    return { userId: r.user_id, admin: i.admin };
  },
});

const userSummary = z.object({
  userId: z.string(),
  displayname: z.string().nullable(),
  admin: z.boolean(),
  deactivated: z.boolean(),
  createdTs: z.number(),
});

export const userList = defineOp({
  name: "matrix.user.list",
  summary: "List the homeserver's users",
  input: z.object({
    limit: z.number().int().min(1).max(1000).default(100),
    deactivated: z.boolean().default(false).describe("include deactivated users"),
    name: z.string().optional().describe("only users whose ID or display name contains this"),
  }),
  output: z.object({ users: z.array(userSummary), total: z.number() }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  human: (o) =>
    [
      ...o.users.map(
        (u) =>
          `${u.userId}${u.admin ? "  admin" : ""}${u.deactivated ? "  deactivated" : ""}${u.displayname ? `  (${u.displayname})` : ""}`,
      ),
      `${o.total} user(s)`,
    ].join("\n"),
  async run(i, ctx) {
    const q = new URLSearchParams({ limit: String(i.limit), deactivated: String(i.deactivated) });
    if (i.name) q.set("name", i.name);
    // Synapse's admin API shape (client/admin.ts).
    const r = await asService<{
      users: {
        name: string;
        displayname?: string | null;
        admin?: boolean;
        deactivated?: boolean;
        creation_ts: number;
      }[];
      total: number;
    }>(ctx, "GET", `/_synapse/admin/v2/users?${q}`);
    return {
      users: r.users.map((u) => ({
        userId: u.name,
        displayname: u.displayname ?? null,
        admin: !!u.admin,
        deactivated: !!u.deactivated,
        createdTs: u.creation_ts,
      })),
      total: r.total,
    };
  },
});

export const userDeactivate = defineOp({
  name: "matrix.user.deactivate",
  summary: "Deactivate a user: no more logins, all sessions ended, all rooms left",
  input: z.object({ user: z.string().min(1).describe("localpart or full user ID") }),
  output: z.object({ userId: z.string(), deactivated: z.literal(true) }),
  annotations: { readOnly: false, destructive: true, idempotent: true },
  positional: ["user"],
  human: (o) => `deactivated ${o.userId}`,
  async run(i, ctx) {
    const userId = fullUserId(ctx, i.user);
    await asService(ctx, "POST", `/_synapse/admin/v1/deactivate/${encodeURIComponent(userId)}`, {});
    return { userId, deactivated: true as const };
  },
});

const enc = encodeURIComponent;
const userInput = z.object({ user: z.string().min(1).describe("localpart or full user ID") });

export const userShow = defineOp({
  name: "matrix.user.show",
  summary: "Show a user as the admin API sees it (admin, deactivated, shadow-banned, devices, joined rooms)",
  input: userInput,
  output: z.object({
    userId: z.string(),
    displayname: z.string().nullable(),
    admin: z.boolean(),
    deactivated: z.boolean(),
    shadowBanned: z.boolean(),
    createdTs: z.number(),
    devices: z.array(
      z.object({ deviceId: z.string(), lastSeenTs: z.number().nullable(), lastSeenIp: z.string().nullable() }),
    ),
    joinedRooms: z.array(z.string()),
  }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  positional: ["user"],
  human: (o) =>
    [
      `${o.userId}${o.displayname ? ` (${o.displayname})` : ""}${o.admin ? "  admin" : ""}${o.deactivated ? "  deactivated" : ""}${o.shadowBanned ? "  shadow-banned" : ""}`,
      `created ${new Date(o.createdTs).toISOString()}`,
      ...o.devices.map(
        (d) =>
          `device ${d.deviceId}  last seen ${d.lastSeenTs ? new Date(d.lastSeenTs).toISOString() : "-"} ${d.lastSeenIp ?? ""}`,
      ),
      `${o.joinedRooms.length} joined room(s)${o.joinedRooms.length ? `: ${o.joinedRooms.join(", ")}` : ""}`,
    ].join("\n"),
  async run(i, ctx) {
    const userId = fullUserId(ctx, i.user);
    const u = await asService(ctx, "GET", `/_synapse/admin/v2/users/${enc(userId)}`);
    const d = await asService(ctx, "GET", `/_synapse/admin/v2/users/${enc(userId)}/devices`);
    const r = await asService(ctx, "GET", `/_synapse/admin/v1/users/${enc(userId)}/joined_rooms`);
    return {
      userId,
      displayname: u.displayname ?? null,
      admin: !!u.admin,
      deactivated: !!u.deactivated,
      shadowBanned: !!u.shadow_banned,
      createdTs: u.creation_ts,
      devices: d.devices.map((x: { device_id: string; last_seen_ts: number | null; last_seen_ip: string | null }) => ({
        deviceId: x.device_id,
        lastSeenTs: x.last_seen_ts ?? null,
        lastSeenIp: x.last_seen_ip ?? null,
      })),
      joinedRooms: r.joined_rooms,
    };
  },
});

export const userResetPassword = defineOp({
  name: "matrix.user.reset-password",
  summary: "Set a user's password (and log out all their devices unless told not to)",
  input: userInput.extend({
    password: z.string().min(1),
    keepDevices: z.boolean().default(false).describe("keep the user's sessions logged in"),
  }),
  output: z.object({ userId: z.string(), loggedOut: z.boolean() }),
  annotations: { readOnly: false, destructive: true, idempotent: true },
  positional: ["user", "password"],
  human: (o) => `password of ${o.userId} reset${o.loggedOut ? "; all devices logged out" : ""}`,
  async run(i, ctx) {
    const userId = fullUserId(ctx, i.user);
    await asService(ctx, "POST", `/_synapse/admin/v1/reset_password/${enc(userId)}`, {
      new_password: i.password,
      logout_devices: !i.keepDevices,
    });
    return { userId, loggedOut: !i.keepDevices };
  },
});

export const userShadowBan = defineOp({
  name: "matrix.user.shadow-ban",
  summary: "Shadow-ban a user (their messages are accepted but reach nobody), or lift it",
  input: userInput.extend({ lift: z.boolean().default(false).describe("lift the shadow ban") }),
  output: z.object({ userId: z.string(), shadowBanned: z.boolean() }),
  annotations: { readOnly: false, destructive: true, idempotent: true },
  positional: ["user"],
  human: (o) => `${o.userId} ${o.shadowBanned ? "shadow-banned" : "no longer shadow-banned"}`,
  async run(i, ctx) {
    const userId = fullUserId(ctx, i.user);
    await asService(
      ctx,
      i.lift ? "DELETE" : "POST",
      `/_synapse/admin/v1/users/${enc(userId)}/shadow_ban`,
      i.lift ? undefined : {},
    );
    return { userId, shadowBanned: !i.lift };
  },
});
