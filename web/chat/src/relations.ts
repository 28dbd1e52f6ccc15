/**
 * Replies, edits and reactions (spec: "Rich replies", "Event replacements", "Event annotations and
 * reactions"): what a message relates to, how to send each kind, and the reaction tallies of a message.
 */
import { EventType, type MatrixClient, type MatrixEvent, MsgType, RelationType, type Room } from "matrix-js-sdk";

/** What sendMessage takes (its last overload); relation-bearing content is built loosely and cast to it. */
type MessageContent = Parameters<MatrixClient["sendMessage"]>[2];

/** The event this one replies to (m.in_reply_to), if any. */
export function replyToId(e: MatrixEvent): string | undefined {
  const id = e.getWireContent()["m.relates_to"]?.["m.in_reply_to"]?.event_id;
  return typeof id === "string" ? id : undefined;
}

/** A thread reply with is_falling_back carries m.in_reply_to only for old clients: not a real reply. */
export function isRealReply(e: MatrixEvent): boolean {
  const rel = e.getWireContent()["m.relates_to"];
  return !!replyToId(e) && !(rel?.rel_type === RelationType.Thread && rel?.is_falling_back);
}

/** Drop a legacy reply fallback (leading "> " quote lines and the blank line after them). */
export function withoutReplyFallback(body: string): string {
  if (!body.startsWith("> ")) return body;
  const lines = body.split("\n");
  let i = 0;
  while (i < lines.length && lines[i].startsWith(">")) i++;
  if (lines[i] === "") i++;
  return lines.slice(i).join("\n");
}

/** The text a message shows: its newest edit (matrix-js-sdk applies m.new_content), without reply fallback. */
export function messageText(e: MatrixEvent): string {
  const body = e.getContent().body;
  return typeof body === "string" ? withoutReplyFallback(body) : "";
}

/** Edits are shown on the message they edit, never as lines of their own. */
export const isEdit = (e: MatrixEvent): boolean => e.isRelation(RelationType.Replace);

export const isEdited = (e: MatrixEvent): boolean => !!e.replacingEventId();

/** Send a text message, optionally replying to an event, optionally in a thread. */
export async function sendText(
  client: MatrixClient,
  room: Room,
  text: string,
  opts: { replyTo?: MatrixEvent; threadId?: string } = {},
): Promise<void> {
  const content: Record<string, unknown> = { msgtype: MsgType.Text, body: text };
  if (opts.replyTo) content["m.relates_to"] = { "m.in_reply_to": { event_id: opts.replyTo.getId() } };
  await client.sendMessage(room.roomId, opts.threadId ?? null, content as unknown as MessageContent);
}

/** Replace a text message's content (the "* " body is what clients without edit support show). */
export async function sendEdit(client: MatrixClient, room: Room, original: MatrixEvent, text: string): Promise<void> {
  const content = {
    msgtype: MsgType.Text,
    body: `* ${text}`,
    "m.new_content": { msgtype: MsgType.Text, body: text },
    "m.relates_to": { rel_type: RelationType.Replace, event_id: original.getId() },
  };
  await client.sendMessage(room.roomId, original.threadRootId ?? null, content as unknown as MessageContent);
}

export interface ReactionTally {
  key: string;
  count: number;
  /** My reaction event with this key, when I reacted (removing it is a redaction). */
  mine?: MatrixEvent;
  senders: string[];
}

/** The reactions on a message, grouped by key, most used first. */
export function reactionsOf(room: Room, e: MatrixEvent, me: string): ReactionTally[] {
  const id = e.getId();
  if (!id) return [];
  const rel = room.relations.getChildEventsForEvent(id, RelationType.Annotation, EventType.Reaction);
  const sorted = rel?.getSortedAnnotationsByKey() ?? [];
  return sorted
    .map(([key, events]) => {
      const live = [...events].filter((r) => !r.isRedacted());
      return {
        key,
        count: live.length,
        mine: live.find((r) => r.getSender() === me),
        senders: live.map((r) => r.getSender() ?? ""),
      };
    })
    .filter((t) => t.count > 0);
}

/** Add my reaction with this key, or take it back when I already reacted so. */
export async function toggleReaction(client: MatrixClient, room: Room, e: MatrixEvent, key: string): Promise<void> {
  const mine = reactionsOf(room, e, client.getUserId()!).find((t) => t.key === key)?.mine;
  if (mine?.getId()) {
    await client.redactEvent(room.roomId, mine.getId()!);
    return;
  }
  await client.sendEvent(room.roomId, e.threadRootId ?? null, EventType.Reaction, {
    "m.relates_to": { rel_type: RelationType.Annotation, event_id: e.getId()!, key },
  });
}
