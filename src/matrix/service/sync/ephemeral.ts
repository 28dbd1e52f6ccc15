/** /sync: ephemeral events (m.typing, m.receipt) of joined rooms (unread counts: unread.ts). */

import type { BasicEvent } from "../../events/types.ts";
import type { ReceiptRow } from "../../store/types.ts";
import { eventAllowed, limitNewest, roomAllowed } from "../filters.ts";
import type { SyncCtx } from "./context.ts";

/** Receipts of these rooms newer than `since` (all of them on an initial sync), grouped by room. */
export async function receiptsByRoom(ctx: SyncCtx, roomIds: string[]): Promise<Map<string, ReceiptRow[]>> {
  const out = new Map<string, ReceiptRow[]>();
  if (roomIds.length === 0) return out;
  const rows = await ctx.hs.store.ephemeral.getReceiptsSince(roomIds, ctx.since?.stream ?? 0);
  for (const r of rows) {
    if (r.stream > ctx.upto) continue;
    // Private receipts are only ever shown to their owner (spec: m.read.private).
    if (r.type === "m.read.private" && r.userId !== ctx.userId) continue;
    const list = out.get(r.roomId);
    if (list) list.push(r);
    else out.set(r.roomId, [r]);
  }
  return out;
}

/** Rooms whose typing set changed since the token (every room with someone typing on an initial sync). */
export function typingRooms(ctx: SyncCtx, joined: Iterable<string>): Set<string> {
  const { typing } = ctx.hs;
  if (ctx.typingSince >= 0) return typing.changedSince(ctx.typingSince);
  const out = new Set<string>();
  for (const r of joined) if (typing.typingIn(r).length) out.add(r);
  return out;
}

export function ephemeralEvents(
  ctx: SyncCtx,
  roomId: string,
  typingChanged: boolean,
  receipts: ReceiptRow[] | undefined,
): BasicEvent[] {
  const f = ctx.filter.room?.ephemeral;
  if (!roomAllowed(f, roomId)) return [];
  const out: BasicEvent[] = [];
  if (typingChanged && eventAllowed(f, "m.typing", undefined)) {
    out.push({ type: "m.typing", content: { user_ids: ctx.hs.typing.typingIn(roomId) } });
  }
  if (receipts?.length && eventAllowed(f, "m.receipt", undefined)) {
    const content: Record<string, Record<string, Record<string, { ts: number; thread_id?: string }>>> = {};
    for (const r of receipts) {
      if (f?.not_senders?.includes(r.userId) || (f?.senders && !f.senders.includes(r.userId))) continue;
      content[r.eventId] ??= {};
      const byType = content[r.eventId];
      byType[r.type] ??= {};
      const users = byType[r.type];
      const receipt: { ts: number; thread_id?: string } = { ts: r.ts };
      if (r.threadId !== null) receipt.thread_id = r.threadId;
      users[r.userId] = receipt;
    }
    if (Object.keys(content).length) out.push({ type: "m.receipt", content });
  }
  return limitNewest(out, f);
}
