/** Receipts and read markers (spec: "Receipts", "Fully read markers"); both are delivered by /sync. */
import { AmiError } from "../../../core/errors.ts";
import type { Homeserver } from "../../hs.ts";

export const RECEIPT_TYPES = ["m.read", "m.read.private"] as const;
export const FULLY_READ = "m.fully_read";

/** Receipts and markers need the user in the room and the event in that room. Returns the event's stream. */
async function checkTarget(hs: Homeserver, roomId: string, userId: string, eventId: string): Promise<number> {
  const m = await hs.store.events.getMembership(roomId, userId);
  if (m?.membership !== "join") throw new AmiError("M_FORBIDDEN", "You are not joined to this room");
  const ev = await hs.store.events.getEvent(eventId);
  if (!ev || ev.roomId !== roomId) throw new AmiError("M_NOT_FOUND", "Unknown event in this room");
  return ev.stream;
}

/** Set an m.read / m.read.private receipt. A receipt older than the user's current one is a no-op. */
export async function setReceipt(
  hs: Homeserver,
  p: { roomId: string; userId: string; type: string; eventId: string; threadId: string | null },
): Promise<void> {
  const target = await checkTarget(hs, p.roomId, p.userId, p.eventId);
  await hs.stream.write(
    async (stream) => {
      const cur = await hs.store.ephemeral.getReceipt(p.roomId, p.userId, p.type, p.threadId);
      if (cur) {
        if (cur.eventId === p.eventId) return;
        const prev = await hs.store.events.getEvent(cur.eventId);
        if (prev && prev.stream > target) return;
      }
      await hs.store.ephemeral.setReceipt({ ...p, ts: Date.now(), stream });
    },
    { kind: "receipt", roomId: p.roomId, userId: p.userId, private: p.type === "m.read.private" },
  );
}

/** m.fully_read is per-room account data `{event_id}`. */
export async function setFullyRead(hs: Homeserver, roomId: string, userId: string, eventId: string): Promise<void> {
  await checkTarget(hs, roomId, userId, eventId);
  await hs.stream.write(
    (stream) =>
      hs.store.accountData.setAccountData({ userId, roomId, type: FULLY_READ, content: { event_id: eventId }, stream }),
    { kind: "users", userIds: [userId] },
  );
}
