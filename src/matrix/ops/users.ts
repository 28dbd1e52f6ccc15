/** `ami-streams matrix user create|list|deactivate` (MCP: matrix_user_*). */
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
