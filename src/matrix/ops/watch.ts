/**
 * `ami-streams matrix watch [--room R]` (CLI only): follow the WebSocket event stream, one JSON line per event;
 * `matrix.room.events` (CLI and MCP `matrix_room_events`): a room's events after a token, and the next token.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { defineOp, type OpContext } from "../../core/ops.ts";
import { type ClientEvent, field, type JsonObject } from "../events/types.ts";
import type { SyncResponse } from "../service/sync/types.ts";
import { SyncStream } from "../websocket/client.ts";
import { CloseCode } from "../websocket/protocol.ts";
import { asService, homeserverUrl, resolveRoom, serviceUserId } from "./client.ts";

const enc = encodeURIComponent;

/** The service account's access token (asService caches it in this file; whoami makes sure it exists). */
async function serviceToken(ctx: OpContext): Promise<string> {
  await serviceUserId(ctx);
  return JSON.parse(readFileSync(join(ctx.paths.run, "matrix-ops-token.json"), "utf8")).accessToken;
}

/** One line per event of a sync body: `{next_batch, room_id?, section, event}`. */
export function eventLines(nextBatch: string, data: SyncResponse): JsonObject[] {
  const out: JsonObject[] = [];
  for (const [kind, rooms] of Object.entries(data.rooms ?? {}))
    for (const [roomId, room] of Object.entries(rooms as Record<string, JsonObject>))
      for (const section of ["state", "timeline", "ephemeral", "account_data", "invite_state", "knock_state"])
        for (const event of (field(room, section, "events") as unknown[] | undefined) ?? [])
          out.push({ next_batch: nextBatch, room_id: roomId, membership: kind, section, event });
  for (const section of ["account_data", "presence", "to_device"] as const)
    for (const event of data[section]?.events ?? []) out.push({ next_batch: nextBatch, section, event });
  const dl = data.device_lists;
  if (dl && (dl.changed?.length || dl.left?.length))
    out.push({ next_batch: nextBatch, section: "device_lists", event: dl });
  return out;
}

export const watch = defineOp({
  name: "matrix.watch",
  summary: "Print the homeserver's events as JSON lines, live, until interrupted (WebSocket stream)",
  description:
    "Follows /_ami/ws/v1/sync as the ami-streams service account (or --token's user): one JSON line per event " +
    "({next_batch, room_id, section, event}). Reconnects from the last next_batch after a drop or a resync.",
  input: z
    .object({
      room: z.string().optional().describe("only this room (ID or alias)"),
      token: z.string().optional().describe("access token of the user to watch as (default: the service account)"),
      since: z.string().optional().describe("start after this next_batch (default: now)"),
    })
    .strict(),
  output: z.object({ events: z.number(), since: z.string().nullable() }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  cliOnly: true,
  human: () => "",
  async run(i, ctx) {
    const token = i.token ?? (await serviceToken(ctx));
    const room = i.room ? await resolveRoom(ctx, i.room) : null;
    const filter = JSON.stringify({ room: { ...(room ? { rooms: [room] } : {}), timeline: { limit: 100 } } });
    let since: string | null = i.since ?? null;
    let events = 0;
    let first = since === null;
    while (!ctx.signal.aborted) {
      const stream = new SyncStream(homeserverUrl(ctx), {
        token,
        filter,
        since,
        ack: true,
        onSync(nb, data) {
          since = nb;
          // Without a since token the first frame is a whole initial sync: start "now" instead of replaying it.
          if (first) {
            first = false;
            return;
          }
          for (const line of eventLines(nb, data)) {
            events++;
            ctx.print(JSON.stringify(line));
          }
        },
      });
      const stop = () => void stream.close();
      ctx.signal.addEventListener("abort", stop, { once: true });
      const closed = await stream.closed;
      ctx.signal.removeEventListener("abort", stop);
      if (ctx.signal.aborted) break;
      if (closed.code === CloseCode.unauthorized || closed.code === CloseCode.badInput)
        throw new AmiError(
          closed.code === CloseCode.unauthorized ? "M_UNKNOWN_TOKEN" : "AMI_INVALID_INPUT",
          closed.reason,
        );
      if (closed.code === 1006 && since === null)
        throw new AmiError("AMI_NOT_RUNNING", "matrix is not running: start it with `ami-streams matrix start`");
      await new Promise((r) => setTimeout(r, 500)); // dropped or told to resync: resume from `since`
    }
    return { events, since };
  },
});

const path = (p: string) => `/_matrix/client/v3${p}`;

export const roomEvents = defineOp({
  name: "matrix.room.events",
  summary: "Read the latest events of a room since a token (returns the events and the next token)",
  description:
    "Without `since`: the room's last `limit` events, oldest first. With `since` (a `next` from an earlier call): " +
    "the events after it, oldest first, at most `limit`; call again with the returned `next` to continue.",
  input: z.object({
    room: z.string().min(1).describe("room ID (!...) or alias (#...)"),
    since: z.string().optional().describe("the `next` token of an earlier call"),
    limit: z.number().int().min(1).max(1000).default(50),
  }),
  output: z.object({
    roomId: z.string(),
    events: z.array(z.record(z.string(), z.any())),
    next: z.string(),
    more: z.boolean().describe("true when `limit` cut the answer short: call again with `next`"),
  }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  positional: ["room"],
  human: (o) =>
    [
      ...o.events.map((e) => `${e.event_id} ${e.sender} ${e.type} ${JSON.stringify(e.content)}`),
      `next: ${o.next}`,
    ].join("\n"),
  async run(i, ctx) {
    const roomId = await resolveRoom(ctx, i.room);
    const messages = (q: Record<string, string>) =>
      asService<{ start: string; chunk: ClientEvent[]; end?: string }>(
        ctx,
        "GET",
        path(`/rooms/${enc(roomId)}/messages?${new URLSearchParams(q)}`),
      );
    let now: { start: string };
    try {
      now = await messages({ dir: "b", limit: "0" });
    } catch (e) {
      if (!(e instanceof AmiError) || e.code !== "M_FORBIDDEN") throw e;
      await asService(ctx, "POST", path(`/join/${enc(i.room)}`), {});
      now = await messages({ dir: "b", limit: "0" });
    }
    // `now.start` is the room's position at this moment: everything returned is <= it, so no event slips between.
    const upto: string = now.start;
    if (!i.since) {
      const r = await messages({ dir: "b", from: upto, limit: String(i.limit) });
      return { roomId, events: r.chunk.reverse(), next: upto, more: false };
    }
    const r = await messages({ dir: "f", from: i.since, to: upto, limit: String(i.limit) });
    const { end } = r;
    const more = typeof end === "string";
    return { roomId, events: r.chunk, next: more ? end : upto, more };
  },
});
