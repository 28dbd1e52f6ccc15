/**
 * Our users' typing, read receipts and presence, sent as EDUs to the servers of the remote members of their rooms
 * (current state's joined members). Only with federation on; a failure here is logged, never the client's error.
 * Each is coalesced in the sender's queue (typing per room+user, receipts per room+user, presence per user), so a
 * burst to a slow server costs one EDU each.
 */
import { serverNameOf } from "../events/ids.ts";
import type { Homeserver } from "../hs.ts";

/** The other servers with a member joined to `roomId`. */
async function remoteServers(hs: Homeserver, roomIds: string[]): Promise<Set<string>> {
  const out = new Set<string>();
  const byRoom = await hs.store.events.getMembersOfRooms(roomIds);
  for (const members of byRoom.values())
    for (const m of members) {
      if (m.membership !== "join") continue;
      const s = serverNameOf(m.userId);
      if (s && s !== hs.serverName) out.add(s);
    }
  return out;
}

function guarded(hs: Homeserver, what: string, fn: () => Promise<void>): void {
  if (!hs.config.federation.enabled) return;
  void fn().catch((e) => hs.log.warn(`federation: cannot send ${what}`, { err: String(e).slice(0, 300) }));
}

/**
 * A local event, as the signed PDU, to every other server with a member joined to its room (after the event: a
 * join of a remote user includes that user's server), plus the target's server of a membership event (an invite,
 * kick or ban reaches the user's server too). The sender's queue batches them per destination. `except`: a server
 * that has it already (a remote join accepted by send_join goes to the room's other servers). `stream`: the local
 * event's position here, so the sender's catch-up can resend it after a restart or an overflow.
 */
export function sendPduOut(
  hs: Homeserver,
  roomId: string,
  pdu: Record<string, unknown>,
  memberTarget?: string,
  except?: string,
  stream?: number,
): void {
  guarded(hs, "PDU", async () => {
    const servers = await remoteServers(hs, [roomId]);
    if (except) servers.delete(except);
    const target = memberTarget === undefined ? null : serverNameOf(memberTarget);
    if (target && target !== hs.serverName) servers.add(target);
    if (servers.size === 0) return;
    hs.federation.sender.sendPdus(servers, [pdu], stream);
  });
}

export function sendTypingEdu(hs: Homeserver, roomId: string, userId: string, typing: boolean): void {
  guarded(hs, "typing", async () => {
    const servers = await remoteServers(hs, [roomId]);
    if (servers.size === 0) return;
    hs.federation.sender.sendEdu(
      servers,
      { edu_type: "m.typing", content: { room_id: roomId, user_id: userId, typing } },
      `${roomId}\u0000${userId}`,
    );
  });
}

export function sendReceiptEdu(
  hs: Homeserver,
  roomId: string,
  userId: string,
  eventId: string,
  threadId: string | null,
): void {
  guarded(hs, "receipt", async () => {
    const servers = await remoteServers(hs, [roomId]);
    if (servers.size === 0) return;
    const data: Record<string, unknown> = { ts: Date.now() };
    if (threadId !== null) data.thread_id = threadId;
    hs.federation.sender.sendEdu(
      servers,
      { edu_type: "m.receipt", content: { [roomId]: { "m.read": { [userId]: { event_ids: [eventId], data } } } } },
      `${roomId}\u0000${userId}\u0000${threadId ?? ""}`,
    );
  });
}

export function sendPresenceEdu(hs: Homeserver, userId: string, presence: string, statusMsg: string | null): void {
  guarded(hs, "presence", async () => {
    if (serverNameOf(userId) !== hs.serverName) return;
    const rooms = (await hs.store.events.getRoomsForUser(userId)).filter((m) => m.membership === "join");
    if (rooms.length === 0) return;
    const servers = await remoteServers(
      hs,
      rooms.map((m) => m.roomId),
    );
    if (servers.size === 0) return;
    const p: Record<string, unknown> = { user_id: userId, presence, last_active_ago: 0 };
    if (statusMsg !== null) p.status_msg = statusMsg;
    if (presence === "online") p.currently_active = true;
    hs.federation.sender.sendEdu(servers, { edu_type: "m.presence", content: { push: [p] } }, userId);
  });
}
