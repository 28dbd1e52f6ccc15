/** `ami-streams matrix room create|list|send|messages` (MCP: matrix_room_*), acting as the service account. */
import { randomBytes } from "node:crypto";
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { defineOp, type OpContext } from "../../core/ops.ts";
import type { ClientEvent } from "../events/types.ts";
import { asService, fullUserId, resolveRoom } from "./client.ts";
import { withServiceAgent } from "./e2ee.ts";

const path = (p: string) => `/_matrix/client/v3${p}`;
const enc = encodeURIComponent;

/** Run `fn`; if the service account is not in the room yet, join it (by ID or alias) and run it again. */
async function asMember<T>(ctx: OpContext, room: string, fn: (roomId: string) => Promise<T>): Promise<T> {
  const roomId = await resolveRoom(ctx, room);
  try {
    return await fn(roomId);
  } catch (e) {
    if (!(e instanceof AmiError) || e.code !== "M_FORBIDDEN") throw e;
    await asService(ctx, "POST", path(`/join/${enc(room)}`), {});
    return fn(roomId);
  }
}

export const roomCreate = defineOp({
  name: "matrix.room.create",
  summary: "Create a room (owned by the ami-streams service account)",
  input: z.object({
    name: z.string().optional(),
    topic: z.string().optional(),
    alias: z.string().optional().describe("alias localpart (or #alias:server)"),
    public: z.boolean().default(false).describe("public_chat preset and listed in the room directory"),
    invite: z.array(z.string()).default([]).describe("users to invite (localparts or user IDs)"),
    encrypted: z.boolean().default(false).describe("end-to-end encrypted (Megolm) from the first event"),
  }),
  output: z.object({ roomId: z.string(), alias: z.string().nullable() }),
  annotations: { readOnly: false, destructive: false, idempotent: false },
  positional: ["name"],
  human: (o) => `created ${o.roomId}${o.alias ? ` (${o.alias})` : ""}`,
  async run(i, ctx) {
    const aliasLocal = i.alias?.replace(/^#/, "").split(":")[0];
    const body: Record<string, unknown> = {
      preset: i.public ? "public_chat" : "private_chat",
      visibility: i.public ? "public" : "private",
      invite: i.invite.map((u) => fullUserId(ctx, u)),
    };
    if (i.name !== undefined) body.name = i.name;
    if (i.topic !== undefined) body.topic = i.topic;
    if (aliasLocal) body.room_alias_name = aliasLocal;
    if (i.encrypted)
      body.initial_state = [
        { type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } },
      ];
    const r = await asService<{ room_id: string }>(ctx, "POST", path("/createRoom"), body);
    return { roomId: r.room_id, alias: aliasLocal ? `#${aliasLocal}:${ctx.config.matrix.serverName}` : null };
  },
});

const roomSummary = z.object({
  roomId: z.string(),
  name: z.string().nullable(),
  alias: z.string().nullable(),
  members: z.number(),
  version: z.string(),
  public: z.boolean(),
});

export const roomList = defineOp({
  name: "matrix.room.list",
  summary: "List the homeserver's rooms",
  input: z.object({ limit: z.number().int().min(1).max(1000).default(100) }),
  output: z.object({ rooms: z.array(roomSummary), total: z.number() }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  human: (o) =>
    [
      ...o.rooms.map(
        (r) => `${r.roomId}  ${r.alias ?? "-"}  ${r.name ?? "-"}  ${r.members} member(s)${r.public ? "  public" : ""}`,
      ),
      `${o.total} room(s)`,
    ].join("\n"),
  async run(i, ctx) {
    // Synapse's admin API shape (client/admin.ts).
    const r = await asService<{
      rooms: {
        room_id: string;
        name?: string | null;
        canonical_alias?: string | null;
        joined_members?: number;
        version: string;
        public?: boolean;
      }[];
      total_rooms: number;
    }>(ctx, "GET", `/_synapse/admin/v1/rooms?limit=${i.limit}`);
    return {
      rooms: r.rooms.map((x) => ({
        roomId: x.room_id,
        name: x.name ?? null,
        alias: x.canonical_alias ?? null,
        members: x.joined_members ?? 0,
        version: x.version,
        public: !!x.public,
      })),
      total: r.total_rooms,
    };
  },
});

export const roomSend = defineOp({
  name: "matrix.room.send",
  summary: "Send a text message to a room (room ID or alias)",
  input: z.object({
    room: z.string().min(1).describe("room ID (!...) or alias (#...)"),
    text: z.string().min(1),
    msgtype: z.enum(["m.text", "m.notice", "m.emote"]).default("m.text"),
    encrypted: z
      .boolean()
      .default(false)
      .describe("encrypt end to end from the service account's own device (the room must be encrypted)"),
  }),
  output: z.object({ roomId: z.string(), eventId: z.string() }),
  annotations: { readOnly: false, destructive: false, idempotent: false },
  positional: ["room", "text"],
  human: (o) => `sent ${o.eventId} to ${o.roomId}`,
  async run(i, ctx) {
    if (i.encrypted)
      return withServiceAgent(ctx, (agent) => agent.send(i.room, i.text, { encrypted: true, msgtype: i.msgtype }));
    const txn = randomBytes(12).toString("base64url");
    return asMember(ctx, i.room, async (roomId) => {
      const r = await asService<{ event_id: string }>(
        ctx,
        "PUT",
        path(`/rooms/${enc(roomId)}/send/m.room.message/${txn}`),
        {
          msgtype: i.msgtype,
          body: i.text,
        },
      );
      return { roomId, eventId: r.event_id };
    });
  },
});

const message = z.object({
  eventId: z.string(),
  sender: z.string(),
  ts: z.number(),
  type: z.string(),
  body: z.string().nullable(),
});

export const roomMessages = defineOp({
  name: "matrix.room.messages",
  summary: "Show a room's latest messages, oldest first",
  input: z.object({
    room: z.string().min(1).describe("room ID (!...) or alias (#...)"),
    limit: z.number().int().min(1).max(1000).default(20),
  }),
  output: z.object({ roomId: z.string(), messages: z.array(message) }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  positional: ["room"],
  human: (o) =>
    o.messages.map((m) => `[${new Date(m.ts).toISOString()}] ${m.sender}: ${m.body ?? `(${m.type})`}`).join("\n") ||
    "(no messages)",
  async run(i, ctx) {
    return asMember(ctx, i.room, async (roomId) => {
      const q = new URLSearchParams({
        dir: "b",
        limit: String(i.limit),
        filter: JSON.stringify({ types: ["m.room.message"] }),
      });
      const r = await asService<{ chunk: ClientEvent[] }>(ctx, "GET", path(`/rooms/${enc(roomId)}/messages?${q}`));
      const messages = r.chunk
        .map((e) => ({
          eventId: e.event_id,
          sender: e.sender,
          ts: e.origin_server_ts,
          type: e.type,
          body: typeof e.content?.body === "string" ? e.content.body : null,
        }))
        .reverse();
      return { roomId, messages };
    });
  },
});
