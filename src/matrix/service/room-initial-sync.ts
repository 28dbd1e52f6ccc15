/**
 * A room's initial sync (spec room_initial_sync.yaml; deprecated, kept for peeking): membership, the latest
 * messages, state, directory visibility and the requester's room account data, plus Synapse's extras for joined
 * members (receipts and presence). Everything is read through history visibility: a reader who left sees the
 * messages and state up to their leave, a peeker of a world-readable room what it shows.
 */
import type { ClientEvent } from "../events/types.ts";
import type { Homeserver } from "../hs.ts";
import type { Requester } from "./requester.ts";
import { topoToken } from "./room-query.ts";
import { newSyncCtx } from "./sync/context.ts";
import { ephemeralEvents, receiptsByRoom } from "./sync/ephemeral.ts";
import { accountData, presenceEvents } from "./sync/extras.ts";
import type { SyncBasicEvent } from "./sync/types.ts";
import { readableRoom, readableState, stateBound, visibleRoomEvents } from "./visibility.ts";

/** Messages in the response unless `limit` says otherwise: Synapse's default. */
export const INITIAL_SYNC_MESSAGES = 10;

export interface RoomInitialSync {
  room_id: string;
  membership: string;
  messages: { start?: string; end: string; chunk: ClientEvent[] };
  state: ClientEvent[];
  visibility: "public" | "private";
  account_data: SyncBasicEvent[];
  receipts: SyncBasicEvent[];
  presence: SyncBasicEvent[];
}

/** M_NOT_FOUND for an unknown room, M_FORBIDDEN for one the requester may not read (readableRoom). */
export async function roomInitialSync(
  hs: Homeserver,
  requester: Requester,
  roomId: string,
  limit = INITIAL_SYNC_MESSAGES,
): Promise<RoomInitialSync> {
  const v = await readableRoom(hs, roomId, requester.userId);
  const upto = hs.stream.current;
  const bound = Math.min(stateBound(v), upto);
  const [room, state, latest] = await Promise.all([
    hs.store.rooms.getRoom(roomId),
    readableState(hs, v),
    limit > 0 ? visibleRoomEvents(hs, v.ranges, { roomId, dir: "b", from: bound + 1, limit }) : [],
  ]);
  const chunk = latest.reverse();
  const ctx = newSyncCtx(hs, requester, { since: null, filter: {}, fullState: true, upto, typingSerial: 0 });
  const joined = v.membership === "join";
  const [data, receipts, presence] = await Promise.all([
    accountData(ctx),
    joined ? receiptsByRoom(ctx, [roomId]) : new Map(),
    joined ? presenceEvents(ctx, new Set((await hs.store.events.getMembers(roomId, "join")).map((m) => m.userId))) : [],
  ]);
  const messages: RoomInitialSync["messages"] = {
    chunk: await hs.clientEvents(chunk, requester),
    end: topoToken(bound),
  };
  if (chunk.length) messages.start = topoToken(chunk[0].stream - 1);
  return {
    room_id: roomId,
    // A peeker of a world-readable room has no membership: the spec's enum has no "none", Synapse says "leave".
    membership: v.membership ?? "leave",
    messages,
    state: await hs.clientEvents(state, requester),
    visibility: room?.isPublic ? "public" : "private",
    account_data: data.rooms.get(roomId) ?? [],
    receipts: ephemeralEvents(ctx, roomId, false, receipts.get(roomId)),
    presence,
  };
}
