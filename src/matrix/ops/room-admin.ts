/** `ami-streams matrix room show|members|block|delete` (MCP: matrix_room_*): the room admin API, as the service account. */
import { z } from "zod";
import { defineOp } from "../../core/ops.ts";
import { asService, fullUserId, resolveRoom } from "./client.ts";

const enc = encodeURIComponent;
const roomInput = z.object({ room: z.string().min(1).describe("room ID or alias") });
const adminRoom = (roomId: string, tail = "") => `/_synapse/admin/v1/rooms/${enc(roomId)}${tail}`;

export const roomShow = defineOp({
  name: "matrix.room.show",
  summary: "Show a room's details (name, creator, members, settings, block status)",
  input: roomInput,
  output: z.object({
    roomId: z.string(),
    name: z.string().nullable(),
    alias: z.string().nullable(),
    creator: z.string(),
    version: z.string(),
    joinedMembers: z.number(),
    public: z.boolean(),
    joinRule: z.string().nullable(),
    historyVisibility: z.string().nullable(),
    encryption: z.string().nullable(),
    blocked: z.boolean(),
  }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  positional: ["room"],
  human: (o) =>
    [
      `${o.roomId}  ${o.alias ?? "-"}  ${o.name ?? "-"}${o.blocked ? "  BLOCKED" : ""}`,
      `creator ${o.creator}, version ${o.version}, ${o.joinedMembers} joined, ${o.public ? "public" : "not published"}`,
      `join rule ${o.joinRule ?? "-"}, history ${o.historyVisibility ?? "-"}, encryption ${o.encryption ?? "none"}`,
    ].join("\n"),
  async run(i, ctx) {
    const roomId = await resolveRoom(ctx, i.room);
    const r = await asService(ctx, "GET", adminRoom(roomId));
    const b = await asService(ctx, "GET", adminRoom(roomId, "/block"));
    return {
      roomId,
      name: r.name ?? null,
      alias: r.canonical_alias ?? null,
      creator: r.creator,
      version: r.version,
      joinedMembers: r.joined_members,
      public: !!r.public,
      joinRule: r.join_rules ?? null,
      historyVisibility: r.history_visibility ?? null,
      encryption: r.encryption ?? null,
      blocked: !!b.block,
    };
  },
});

export const roomMembers = defineOp({
  name: "matrix.room.members",
  summary: "List a room's joined members",
  input: roomInput,
  output: z.object({ roomId: z.string(), members: z.array(z.string()) }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  positional: ["room"],
  human: (o) => [...o.members, `${o.members.length} member(s)`].join("\n"),
  async run(i, ctx) {
    const roomId = await resolveRoom(ctx, i.room);
    const r = await asService<{ members: string[] }>(ctx, "GET", adminRoom(roomId, "/members"));
    return { roomId, members: r.members };
  },
});

export const roomBlock = defineOp({
  name: "matrix.room.block",
  summary: "Block a room (no one can join or be invited; works for room IDs not known yet), or unblock it",
  input: roomInput.extend({ unblock: z.boolean().default(false) }),
  output: z.object({ roomId: z.string(), blocked: z.boolean() }),
  annotations: { readOnly: false, destructive: true, idempotent: true },
  positional: ["room"],
  human: (o) => `${o.roomId} ${o.blocked ? "blocked" : "unblocked"}`,
  async run(i, ctx) {
    const roomId = i.room.startsWith("!") ? i.room : await resolveRoom(ctx, i.room);
    const r = await asService<{ block: boolean }>(ctx, "PUT", adminRoom(roomId, "/block"), { block: !i.unblock });
    return { roomId, blocked: r.block };
  },
});

export const roomDelete = defineOp({
  name: "matrix.room.delete",
  summary:
    "Shut a room down: every local member leaves (joined ones moved to a new room if asked), aliases moved, history purged",
  description:
    "Synapse's DELETE /_synapse/admin/v1/rooms: with newRoomUser, a new public room is made by that user with a message saying why, members are moved into it (muted) and the room's aliases follow. Then the old room is purged from the store (every event, its state and memberships), unless keepHistory.",
  input: roomInput.extend({
    newRoomUser: z.string().optional().describe("creator of a room to move members into (localpart or user ID)"),
    roomName: z.string().optional().describe("name of the new room"),
    message: z.string().optional().describe("first message of the new room"),
    block: z.boolean().default(true).describe("also block the room so no one can join it again"),
    keepHistory: z.boolean().default(false).describe("keep the room's events and state in the store (no purge)"),
  }),
  output: z.object({
    roomId: z.string(),
    kickedUsers: z.array(z.string()),
    failedToKickUsers: z.array(z.string()),
    localAliases: z.array(z.string()),
    newRoomId: z.string().nullable(),
  }),
  annotations: { readOnly: false, destructive: true, idempotent: true },
  positional: ["room"],
  human: (o) =>
    [
      `${o.roomId} shut down: ${o.kickedUsers.length} member(s) removed${o.failedToKickUsers.length ? `, ${o.failedToKickUsers.length} failed` : ""}`,
      ...(o.newRoomId
        ? [`moved to ${o.newRoomId}${o.localAliases.length ? ` with ${o.localAliases.join(", ")}` : ""}`]
        : []),
    ].join("\n"),
  async run(i, ctx) {
    const roomId = await resolveRoom(ctx, i.room);
    const body: Record<string, unknown> = { block: i.block, purge: !i.keepHistory };
    if (i.newRoomUser) body.new_room_user_id = fullUserId(ctx, i.newRoomUser);
    if (i.roomName !== undefined) body.room_name = i.roomName;
    if (i.message !== undefined) body.message = i.message;
    const r = await asService(ctx, "DELETE", adminRoom(roomId), body);
    return {
      roomId,
      kickedUsers: r.kicked_users,
      failedToKickUsers: r.failed_to_kick_users,
      localAliases: r.local_aliases,
      newRoomId: r.new_room_id ?? null,
    };
  },
});
