/** `ami-streams matrix room search <term>` (MCP: matrix_room_search): POST /search as the service account. */
import { z } from "zod";
import { defineOp } from "../../core/ops.ts";
import type { ClientEvent } from "../events/types.ts";
import { asService, resolveRoom } from "./client.ts";

const hit = z.object({
  roomId: z.string(),
  eventId: z.string(),
  sender: z.string(),
  ts: z.number(),
  type: z.string(),
  text: z.string().nullable(),
  rank: z.number(),
});

interface RoomEvents {
  count?: number;
  results?: { rank?: number; result: ClientEvent }[];
}

export const roomSearch = defineOp({
  name: "matrix.room.search",
  summary: "Search the messages, room names and topics the service account can read",
  input: z.object({
    term: z.string().min(1),
    room: z.string().optional().describe("only this room (ID or alias)"),
    order: z.enum(["rank", "recent"]).default("rank"),
    limit: z.number().int().min(1).max(1000).default(10),
  }),
  output: z.object({ count: z.number(), results: z.array(hit) }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  positional: ["term"],
  human: (o) =>
    [
      ...o.results.map((r) => `[${new Date(r.ts).toISOString()}] ${r.roomId} ${r.sender}: ${r.text ?? `(${r.type})`}`),
      `${o.count} match(es)`,
    ].join("\n"),
  async run(i, ctx) {
    const filter: Record<string, unknown> = { limit: i.limit };
    if (i.room) filter.rooms = [await resolveRoom(ctx, i.room)];
    const r = await asService<{ search_categories: { room_events?: RoomEvents } }>(
      ctx,
      "POST",
      "/_matrix/client/v3/search",
      { search_categories: { room_events: { search_term: i.term, order_by: i.order, filter } } },
    );
    const re = r.search_categories.room_events ?? {};
    return {
      count: re.count ?? 0,
      results: (re.results ?? []).map(({ rank, result: e }) => {
        const c = e.content as Record<string, unknown>;
        const text = c.body ?? c.name ?? c.topic;
        return {
          roomId: e.room_id,
          eventId: e.event_id,
          sender: e.sender,
          ts: e.origin_server_ts,
          type: e.type,
          text: typeof text === "string" ? text : null,
          rank: rank ?? 0,
        };
      }),
    };
  },
});
